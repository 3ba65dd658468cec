"""camseg_ros layout: commands share library modules, never each other's; the core never imports ROS."""
import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Training, figure and bag libraries: extras (setup.py), never loaded by the node or the inference API.
EXTRAS_ONLY = {'tensorboard', 'albumentations', 'matplotlib', 'rosbags', 'mcap', 'mcap_ros2', 'torchmetrics'}
# Modules behind console_scripts (setup.py): each is a command, importable only by itself and the tests.
COMMANDS = {'camseg_ros.tools.bag_eval', 'camseg_ros.tools.bag_replay', 'camseg_ros.tools.latency_probe',
            'camseg_ros.node'}


def imported_modules(path: Path) -> set[str]:
    """Return every module a Python file imports (absolute names, at any depth of the file)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f'{node.module}.{alias.name}' for alias in node.names)
    return names


def test_commands_are_console_scripts():
    setup = (ROOT / 'setup.py').read_text()
    for module in COMMANDS:
        assert f'= {module}:main' in setup, module


def test_no_command_imports_another_command():
    for path in sorted((ROOT / 'camseg_ros').rglob('*.py')):
        module = '.'.join(path.relative_to(ROOT).with_suffix('').parts)
        others = (imported_modules(path) & COMMANDS) - {module}
        assert not others, f'{module} imports the command module(s) {sorted(others)}'


def test_commands_fit_in_one_read():
    for module in COMMANDS - {'camseg_ros.node'}:
        lines = len((ROOT / (module.replace('.', '/') + '.py')).read_text().splitlines())
        assert lines <= 250, f'{module} has {lines} lines'


def test_core_never_imports_ros():
    for path in sorted((ROOT / 'camseg_core').rglob('*.py')):
        ros = {m for m in imported_modules(path) if m.split('.')[0] in ('rclpy', 'camseg_ros')}
        assert not ros, f'{path.relative_to(ROOT)} imports {sorted(ros)}'


def test_node_and_inference_load_no_extras():
    """Importing the node and the API, and segmenting with the demo model, loads none of the extras."""
    modules = ['camseg_core.api'] + (['camseg_ros.node'] if importlib.util.find_spec('rclpy') else [])
    code = ''.join(f'import {m}\n' for m in modules) + (
        'import sys\n'
        'import numpy as np\n'
        "seg = camseg_core.api.load_segmenter(device='cpu', steps=2, ensemble=1, num_iter=1)\n"
        'seg.segment(np.zeros((32, 64, 3), np.uint8))\n'
        "print(sorted({name.split('.')[0] for name in sys.modules}))\n")
    run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = set(ast.literal_eval(run.stdout.strip().splitlines()[-1]))
    assert 'torch' in loaded and 'camseg_core' in loaded
    assert not loaded & EXTRAS_ONLY, f'{modules} loaded {sorted(loaded & EXTRAS_ONLY)}'


def test_stage_samples_of_the_same_frames_keep_their_order():
    """Stages recorded together per frame: medians and p95 keep every frame's order, whatever the noise."""
    import numpy as np

    from camseg_ros.diagnostics import PipelineStats
    rng = np.random.default_rng(0)
    stats = PipelineStats(window=50)
    for _ in range(300):
        segment = rng.exponential(100.0)
        processing = segment + rng.exponential(5.0)
        stats.add_samples({'segment_ms': segment, 'processing_ms': processing,
                           'in_node_ms': processing + rng.exponential(300.0)})
    snap = stats.snapshot()
    for stat in ('median', 'p95'):
        assert snap[f'segment_ms_{stat}'] <= snap[f'processing_ms_{stat}'] <= snap[f'in_node_ms_{stat}']
