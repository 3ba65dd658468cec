"""`make gpu-recipe`: the whole one-GPU recipe at toy scale on the CPU, and its settings and commands."""
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('gpu_recipe', ROOT / 'scripts' / 'gpu_recipe.py')
recipe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipe)
PARSERS = {'camseg-synth': 'camseg_core.cli.synth', 'camseg-train': 'camseg_core.cli.train',
           'camseg-eval': 'camseg_core.cli.eval', 'camseg-compare': 'camseg_core.cli.compare'}


def test_settings_come_from_the_environment_or_the_gpu_or_toy_values():
    gpu = recipe.settings({})
    assert gpu['TRAIN_SCENES'] == '2000' and gpu['IMAGE_SIZE'] == '128x256'
    assert gpu['RECIPE_PRECISION'] == 'bf16' and gpu['CONDITIONS'] == 'clear,fog,snow,rain,night'
    toy = recipe.settings({'TOY': '1', 'VAE_STEPS': '7'})
    assert toy['TRAIN_SCENES'] == '8' and toy['RECIPE_DEVICE'] == 'cpu' and toy['VAE_STEPS'] == '7'


def test_every_stage_command_parses():
    stages = recipe.stages(recipe.settings({}))
    names = ['synth-train', 'synth-val', 'vae', 'segmenter', 'segmenter-ft', 'decoder', 'baseline', 'export',
             'eval-camseg', 'eval-baseline', 'compare', 'ceiling-vae']
    assert [name for name, _, _ in stages] == names
    for name, program, argv in stages:
        if program in PARSERS:
            importlib.import_module(PARSERS[program]).build_parser().parse_args(argv)
    argv = stages[3][2]
    seg = dict(zip(argv, argv[1:]))
    assert seg['--init'].endswith('vae') and seg['--precision'] == 'bf16' and '--cache-latents' in argv
    argv = stages[4][2]
    ft = dict(zip(argv, argv[1:]))
    assert ft['--init'] == seg['--out'] and '--cache-latents' not in argv  # fresh augmentation every step
    assert dict(zip(stages[5][2], stages[5][2][1:]))['--init'] == ft['--out']  # the decoder reads its tokens
    without = recipe.stages(recipe.settings({'SEG_FT_STEPS': '0'}))
    assert 'segmenter-ft' not in [name for name, _, _ in without]
    assert dict(zip(without[4][2], without[4][2][1:]))['--init'] == seg['--out']


def test_missing_packages_come_from_the_carried_wheels(tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, 'NEEDED', ('camseg_carried_probe',))
    monkeypatch.setattr(sys, 'path', list(sys.path))
    monkeypatch.setenv('PYTHONPATH', 'elsewhere')
    wheels, site = tmp_path / 'whl', tmp_path / 'site'
    with pytest.raises(SystemExit, match='holds no wheels'):
        recipe.ensure_packages(wheels, site)
    wheels.mkdir()
    info = 'camseg_carried_probe-1.0.dist-info'
    with zipfile.ZipFile(wheels / 'camseg_carried_probe-1.0-py3-none-any.whl', 'w') as whl:
        whl.writestr('camseg_carried_probe/__init__.py', 'ANSWER = 42\n')
        whl.writestr(f'{info}/METADATA', 'Metadata-Version: 2.1\nName: camseg-carried-probe\nVersion: 1.0\n')
        whl.writestr(f'{info}/WHEEL', 'Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n'
                                      'Tag: py3-none-any\n')
        whl.writestr(f'{info}/RECORD', f'camseg_carried_probe/__init__.py,,\n{info}/METADATA,,\n'
                                       f'{info}/WHEEL,,\n{info}/RECORD,,\n')
    try:
        recipe.ensure_packages(wheels, site)
        assert sys.modules['camseg_carried_probe'].ANSWER == 42 and sys.path[0] == str(site)
        assert os.environ['PYTHONPATH'] == os.pathsep.join([str(site), 'elsewhere'])  # for spawned workers
    finally:
        sys.modules.pop('camseg_carried_probe', None)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('make') is None, reason='needs make')
def test_toy_recipe_runs_end_to_end(tmp_path):
    run = tmp_path / 'recipe'
    proc = subprocess.run(['make', '-s', '-C', str(ROOT), 'gpu-recipe', 'TOY=1', f'GPU_RUN={run}',
                           f'RECIPE_PY={sys.executable}'], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for path in ('comparison/comparison.md', 'comparison/comparison.json', 'eval_camseg/metrics.json',
                 'eval_baseline/metrics.json', 'export/model.safetensors', 'export/config.json'):
        assert (run / path).is_file(), path
    assert json.loads((run / 'export' / 'config.json').read_text())['config']['sampler']['ensemble'] == 4
    subsets = set(json.loads((run / 'eval_camseg' / 'metrics.json').read_text())['datasets'])
    assert {'clear', 'fog', 'fog_beta0.005', 'fog_beta0.02', 'snow', 'rain', 'night'} <= subsets
    summary = (run / 'summary.md').read_text()
    for stage in ('synth-train', 'synth-val', 'vae', 'segmenter', 'segmenter-ft', 'decoder', 'baseline',
                  'export', 'eval-camseg', 'eval-baseline', 'compare', 'ceiling-vae', 'total'):
        assert f'| {stage} | ' in summary, stage
        assert (stage == 'total') or (run / 'logs' / f'{stage}.log').is_file(), stage
    assert '## mIoU' in summary and 'camseg-train segmenter' in summary
    assert re.search(r'Autoencoder ceiling .*: \d+\.\d after the vae stage, \d+\.\d in the export', summary)
    # A second run replaces the first; a folder that holds something else is left alone.
    other = tmp_path / 'other'
    (other / 'keep').mkdir(parents=True)
    proc = subprocess.run(['make', '-s', '-C', str(ROOT), 'gpu-recipe', 'TOY=1', f'GPU_RUN={other}',
                           f'RECIPE_PY={sys.executable}'], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and 'holds no recipe run' in proc.stderr and (other / 'keep').is_dir()
