"""camseg_ros layout: commands share library modules, never each other's; the core never imports ROS."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Modules behind console_scripts (setup.py): each is a command, importable only by itself and the tests.
COMMANDS = {'camseg_ros.bag_eval', 'camseg_ros.bag_replay', 'camseg_ros.latency_probe', 'camseg_ros.node'}


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
    for path in sorted((ROOT / 'camseg_ros').glob('*.py')):
        module = f'camseg_ros.{path.stem}'
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
