"""recipes/cityscapes_base.yaml end to end at toy size, on generated data in the Cityscapes + ACDC layouts."""
import json
from pathlib import Path

from camseg_core.checkpoint import read_config
from camseg_core.cli.train import main as train
from camseg_core.data.synth.writer import expand_conditions, write_dataset
from camseg_core.training.job import TrainJob
from camseg_core.training.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / 'recipes' / 'cityscapes_base.yaml'


def test_the_base_recipe_carries_the_demo_recipes_lessons():
    stages = {s.name: s for s in load_recipe(RECIPE, ['cityscapes=/cs', 'acdc=/acdc']).stages}
    vae = TrainJob.from_settings('vae', stages['vae'].settings)
    assert vae.preset == 'base' and vae.image_size == (512, 1024) and vae.precision == 'bf16'
    assert vae.class_weight > 0 and vae.mask_weight > 1  # class head trained, masks weighted up
    acdc = [f'acdc:/acdc:{c}:train' for c in ('fog', 'night', 'rain', 'snow')]
    assert vae.data == ['cityscapes:/cs:train'] + acdc
    seg = TrainJob.from_settings('segmenter', stages['segmenter'].settings)
    assert (seg.image_stem, seg.pixel_stem, seg.weather, seg.jitter) == (2, 128, 0.6, 0.7)
    dec = TrainJob.from_settings('vae', stages['decoder'].settings)
    assert dec.decoder_only and dec.generated == 0.5 and str(dec.init).endswith('segmenter')
    assert stages['export'].settings['ensemble'] == 8 and stages['export'].settings['temperature'] == 0.8
    assert stages['eval-camseg'].settings['data'][0] == 'cityscapes:/cs:val'
    only = load_recipe(RECIPE, ['acdc_train=[]', 'acdc_val=[]']).stages
    assert only[0].settings['data'] == ['cityscapes:/data/cityscapes:train']


def test_toy_run_on_generated_cityscapes_and_acdc(tmp_path, capsys):
    data = tmp_path / 'data'
    conditions = expand_conditions('clear,fog,snow,rain,night')
    write_dataset(data, 4, 'train', 1, (32, 64), conditions, progress=False)
    write_dataset(data, 1, 'val', 2, (32, 64), conditions, progress=False)
    assert (data / 'leftImg8bit' / 'train').is_dir() and (data / 'rgb_anon' / 'snow' / 'val').is_dir()
    run = tmp_path / 'run'
    argv = ['recipe', str(RECIPE), '--toy', '--out', str(run), '--set', f'cityscapes={data}',
            '--set', f'acdc={data}']
    assert train(argv) == 0
    config = read_config(run / 'export')[1]['config']
    assert config['sampler']['ensemble'] == 8 and config['sampler']['temperature'] == 0.8
    assert config['transformer']['image_stem'] == 2 and config['transformer']['pixel_stem'] == 128
    subsets = json.loads((run / 'eval-camseg' / 'metrics.json').read_text())['datasets']
    assert list(subsets) == ['cityscapes:val'] + [f'acdc:{c}:val' for c in ('fog', 'night', 'rain', 'snow')]
    summary = json.loads((run / 'summary.json').read_text())
    assert [r['status'] for r in summary['stages']] == ['ran'] * 8
    comparison = json.loads((run / 'comparison' / 'comparison.json').read_text())
    assert comparison['reference_subset'] == 'cityscapes:val'
    assert '## comparison' in (run / 'summary.md').read_text()
    capsys.readouterr()
    assert train(argv) == 0 and capsys.readouterr().out.count('done before, skipped') == 8
