"""`make gpu-recipe` (recipes/gpu.yaml): its settings and stages, the carried wheels, a toy run on the CPU."""
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from camseg_core.training.job import TrainJob
from camseg_core.training.recipe import TRAIN_KINDS, load_recipe

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / 'recipes' / 'gpu.yaml'
NAMES = ['synth-train', 'synth-val', 'vae', 'segmenter', 'segmenter-ft', 'decoder', 'baseline', 'export',
         'eval-camseg', 'eval-baseline', 'compare', 'ceiling-vae']


def test_settings_are_the_gpu_values_or_the_toy_ones_or_overrides():
    gpu = load_recipe(GPU, out='runs/g')
    s = {st.name: st.settings for st in gpu.stages}
    assert s['synth-train']['num'] == 2000 and s['vae']['image_size'] == '128x256'
    assert s['vae']['precision'] == 'bf16' and s['synth-val']['conditions'] == 'clear,fog,snow,rain,night'
    assert s['export'] == {'source': 'runs/g/camseg_dec', 'ensemble': 8, 'out': 'runs/g/export'}
    toy = {st.name: st.settings for st in load_recipe(GPU, ['vae_steps=7'], toy=True).stages}
    assert toy['synth-train']['num'] == 8 and toy['vae']['device'] == 'cpu' and toy['vae']['steps'] == 7
    assert toy['vae']['save_every'] == 7 and toy['segmenter']['steps'] == 2


def test_every_stage_and_the_chain_of_checkpoints():
    recipe = load_recipe(GPU, out='runs/g')
    assert [st.name for st in recipe.stages] == NAMES
    jobs = {st.name: TrainJob.from_settings(st.kind, st.settings) for st in recipe.stages
            if st.kind in TRAIN_KINDS}
    seg, ft, dec = jobs['segmenter'], jobs['segmenter-ft'], jobs['decoder']
    assert seg.init == jobs['vae'].out and seg.precision == 'bf16' and seg.cache_latents
    assert ft.init == seg.out and not ft.cache_latents  # fresh augmentation every step
    assert dec.init == ft.out and dec.decoder_only and dec.generated == 0.5  # the decoder reads its tokens
    assert (seg.image_stem, seg.pixel_stem, seg.weather, seg.jitter) == (2, 128, 0.6, 0.5)
    assert jobs['vae'].class_weight == 2.0 and jobs['vae'].mask_weight == 4 and jobs['vae'].warmup == 100


def test_missing_packages_come_from_the_carried_wheels(tmp_path):
    if shutil.which('make') is None:
        pytest.skip('needs make')
    wheels, site = tmp_path / 'whl', tmp_path / 'site'
    make = ['make', '-s', '-C', str(ROOT), 'gpu-wheels', f'RECIPE_PY={sys.executable}', f'WHEELS={wheels}',
            f'WHEEL_SITE={site}', 'NEEDED=camseg_carried_probe']
    proc = subprocess.run(make, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and 'holds no' in proc.stderr
    wheels.mkdir()
    info = 'camseg_carried_probe-1.0.dist-info'
    with zipfile.ZipFile(wheels / 'camseg_carried_probe-1.0-py3-none-any.whl', 'w') as whl:
        whl.writestr('camseg_carried_probe/__init__.py', 'ANSWER = 42\n')
        whl.writestr(f'{info}/METADATA', 'Metadata-Version: 2.1\nName: camseg-carried-probe\nVersion: 1.0\n')
        whl.writestr(f'{info}/WHEEL', 'Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n'
                                      'Tag: py3-none-any\n')
        whl.writestr(f'{info}/RECORD', f'camseg_carried_probe/__init__.py,,\n{info}/METADATA,,\n'
                                       f'{info}/WHEEL,,\n{info}/RECORD,,\n')
    proc = subprocess.run(make, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    probe = subprocess.run([sys.executable, '-c', 'import camseg_carried_probe as p; print(p.ANSWER)'],
                           capture_output=True, text=True, env={'PYTHONPATH': str(site)})
    assert probe.stdout.strip() == '42'


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('make') is None, reason='needs make')
def test_toy_recipe_runs_end_to_end(tmp_path):
    run = tmp_path / 'recipe'
    make = ['make', '-s', '-C', str(ROOT), 'gpu-recipe', 'TOY=1', f'GPU_RUN={run}',
            f'RECIPE_PY={sys.executable}']
    proc = subprocess.run(make, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for path in ('comparison/comparison.md', 'comparison/comparison.json', 'eval_camseg/metrics.json',
                 'eval_baseline/metrics.json', 'export/model.safetensors', 'export/config.json'):
        assert (run / path).is_file(), path
    assert json.loads((run / 'export' / 'config.json').read_text())['config']['sampler']['ensemble'] == 4
    subsets = set(json.loads((run / 'eval_camseg' / 'metrics.json').read_text())['datasets'])
    assert {'clear', 'fog', 'fog_beta0.005', 'fog_beta0.02', 'snow', 'rain', 'night'} <= subsets
    summary = (run / 'summary.md').read_text()
    for stage in NAMES:
        assert f'| {stage} | ' in summary and (run / 'logs' / f'{stage}.log').is_file(), stage
    assert '# camseg comparison' in summary and '| total (this run) |' in summary
    rows = {r['stage']: r for r in json.loads((run / 'summary.json').read_text())['stages']}
    assert 'autoencoder ceiling cityscapes:val' in rows['ceiling-vae']['metrics']
    assert 'autoencoder ceiling clear' in rows['eval-camseg']['metrics']
    # a second run finds every stage done and skips it
    proc = subprocess.run(make, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.count('done before, skipped') == len(NAMES)
