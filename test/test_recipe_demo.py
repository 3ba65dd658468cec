"""recipes/demo.yaml runs what `make demo-model` ran as commands; demo_single.yaml the same steps at once."""
import shlex
from collections import Counter
from pathlib import Path

import pytest

from camseg_core.cli.synth import build_parser as synth_parser
from camseg_core.cli.train import build_parser as train_parser, main as train
from camseg_core.training.job import TrainJob
from camseg_core.training.recipe import TRAIN_KINDS, load_recipe

ROOT = Path(__file__).resolve().parents[1]
R, D = 'runs/demo_model', 'runs/demo_model/data'
# The commands of the Makefile's demo-model target before the recipe (round 1, round 11), with $R = MODEL_RUN
# and $D = its data; `name:` is the recipe stage that replaces the command.
COMMANDS = """
data-train: camseg-synth --out $D --num 1000 --split train --seed 1 --size 128x256 --conditions clear

data-val: camseg-synth --out $D --num 60 --split val --seed 2 --size 256x512
    --conditions clear,fog,snow,rain,night

vae: camseg-train vae --data generated:$D --out $R/vae --preset tiny --image-size 64x128 --steps 1200
    --batch-size 8 --lr 5e-4 --warmup 50 --workers 1 --class-weight 1.0 --save-every 300 --sample-every 300
    --low-light 0

camseg: camseg-train segmenter --init $R/vae --data generated:$D --out $R/camseg --image-size 64x128
    --steps 5000 --batch-size 8 --lr 4e-4 --warmup 150 --cache-latents --cache-copies 2 --image-stem 2
    --pixel-stem 128 --save-every 250 --sample-every 1000 --low-light 0

camseg_dec: camseg-train vae --init $R/camseg --decoder-only --data generated:$D --out $R/camseg_dec
    --steps 2000 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --class-weight 1.0 --save-every 500
    --sample-every 1000 --low-light 0

camseg_ll: camseg-train segmenter --init $R/camseg_dec --image-stem 2 --pixel-stem 128 --data generated:$D
    --out $R/camseg_ll --image-size 64x128 --steps 2000 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1
    --save-every 250 --sample-every 1000

camseg_gen: camseg-train vae --init $R/camseg_ll --decoder-only --generated 0.5 --data generated:$D
    --out $R/camseg_gen --steps 1500 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --class-weight 1.0
    --save-every 250 --sample-every 500

baseline: camseg-train baseline --data generated:$D --out $R/baseline --preset tiny --image-size 64x128
    --steps 2000 --batch-size 8 --warmup 100 --workers 1 --save-every 250 --sample-every 500 --low-light 0

baseline_5000: camseg-train baseline --data generated:$D --out $R/baseline --preset tiny --image-size 64x128
    --steps 5000 --batch-size 8 --warmup 100 --workers 1 --save-every 250 --sample-every 1000 --low-light 0
    --resume --allow-change steps

baseline_ll: camseg-train baseline --init $R/baseline --data generated:$D --out $R/baseline_ll
    --image-size 64x128 --steps 2000 --batch-size 8 --lr 5e-4 --warmup 50 --workers 1 --save-every 250
    --sample-every 1000

round11_ae: camseg-train vae --init $R/export_round10 --data generated:$D --out $R/round11_ae --steps 2400
    --class-weight 4.0 --mask-weight 8 --batch-size 8 --lr 3e-4 --warmup 20 --workers 1 --save-every 200
    --sample-every 1000 --low-light 0

round11_seg: camseg-train segmenter --init $R/round11_ae --image-stem 2 --pixel-stem 128 --data generated:$D
    --out $R/round11_seg --image-size 64x128 --steps 2000 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1
    --save-every 250 --sample-every 1000 --weather 0.6 --jitter 0.7

round11_gen: camseg-train vae --init $R/round11_seg --decoder-only --generated 0.5 --data generated:$D
    --out $R/round11_gen --steps 1500 --batch-size 8 --lr 2e-4 --warmup 50 --workers 1 --class-weight 1.0
    --save-every 250 --sample-every 500 --weather 0.6 --jitter 0.7

baseline_round11: camseg-train baseline --init $R/baseline_round10 --data generated:$D
    --out $R/baseline_round11 --image-size 64x128 --steps 2000 --batch-size 8 --lr 5e-4 --warmup 50
    --workers 1 --save-every 250 --sample-every 1000 --weather 0.6 --jitter 0.7
"""
MAKEFILE = dict(part.replace('$R', R).replace('$D', D).split(': ', 1)
                for part in COMMANDS.strip().split('\n\n'))
EXPORTS = {'export_round1': f'{R}/camseg_gen', 'export_round2': f'{R}/round2_gen',
           'export': f'{R}/round11_gen'}


@pytest.fixture(scope='module')
def demo():
    return {s.name: s for s in load_recipe(ROOT / 'recipes' / 'demo.yaml', out=R).stages}


def test_demo_recipe_runs_the_makefile_commands(demo):
    for name, command in MAKEFILE.items():
        program, *argv = shlex.split(command)
        stage = demo[name]
        if program == 'camseg-synth':
            args = vars(synth_parser().parse_args(argv))
            assert {k: args[k] for k in ('num', 'split', 'seed', 'conditions')} == \
                {k: stage.settings[k] for k in ('num', 'split', 'seed', 'conditions')}, name
            assert str(args['out']) == stage.settings['out'] and args['size'] == tuple(
                int(v) for v in stage.settings['size'].split('x')), name
            continue
        args = vars(train_parser().parse_args(argv))
        assert stage.kind == args.pop('stage'), name
        recipe_job = TrainJob.from_settings(stage.kind, stage.settings)
        assert recipe_job == TrainJob.from_settings(stage.kind, args), name
    for name, source in EXPORTS.items():
        assert demo[name].settings == {'source': source, 'ensemble': 8, 'temperature': 0.8,
                                       'out': f'{R}/{name}'}
    assert demo['eval_camseg'].settings == {'checkpoint': f'{R}/export', 'data': f'generated:{D}',
                                            'corruptions': 'all', 'severities': 3, 'out': f'{R}/eval_camseg'}
    assert demo['eval_baseline'].settings['checkpoint'] == f'{R}/baseline_round11'
    runs = {'camseg': f'{R}/eval_camseg', 'baseline': f'{R}/eval_baseline'}
    assert demo['comparison'].settings['runs'] == runs


def test_demo_rounds_change_what_the_makefile_changed(demo):
    jobs = {n: TrainJob.from_settings(s.kind, s.settings) for n, s in demo.items() if s.kind in TRAIN_KINDS}
    assert len(demo) == 64 and sum(1 for n in demo if n.endswith('_ae')) == 10
    assert [jobs[f'round{r}_seg'].weather for r in range(2, 12)] == [0.3] * 2 + [0.6] * 8
    assert [jobs[f'round{r}_gen'].jitter for r in range(2, 12)] == [0.3] * 4 + [0.5] + [0.7] * 5
    assert [jobs[f'round{r}_ae'].steps for r in range(2, 12)] == [1200] * 6 + [2400] * 4
    assert [jobs[f'round{r}_ae'].mask_weight for r in range(2, 12)] == [4] * 6 + [8] * 4
    assert jobs['round2_ae'].weather == 0.3 and jobs['round11_ae'].jitter == 0.3  # never the round's extras
    assert str(jobs['baseline_round2'].init) == f'{R}/baseline_ll'
    assert str(jobs['baseline_round3'].init) == f'{R}/baseline_round2'
    assert str(jobs['round2_ae'].init) == f'{R}/export_round1'


def _category(stage):
    if stage.kind == 'vae':
        return 'decoder' if stage.settings.get('decoder_only') else 'autoencoder'
    return stage.kind


def test_single_schedule_has_the_same_steps_per_stage(demo):
    totals, last = Counter(), {}
    for stage in demo.values():
        if stage.kind in TRAIN_KINDS:
            key = _category(stage)
            # a resumed run (baseline_5000) continues the steps of the run before it
            totals[key] += stage.settings['steps'] - (last[key].settings['steps']
                                                      if stage.settings.get('resume') else 0)
            last[key] = stage
    assert totals == {'autoencoder': 18000, 'segmenter': 27000, 'decoder': 18500, 'baseline': 27000}
    single = load_recipe(ROOT / 'recipes' / 'demo_single.yaml', out=R).stages
    train_stages = [s for s in single if s.kind in TRAIN_KINDS]
    assert Counter({_category(s): s.settings['steps'] for s in train_stages}) == totals
    last = ('round11_ae', 'round11_seg', 'round11_gen', 'baseline_round11')
    final = {_category(demo[n]): demo[n] for n in last}
    ignore = {'steps', 'init', 'out', 'preset', 'image_size', 'warmup'}
    for stage in train_stages:
        old = final[_category(stage)].settings
        same = {k for k in set(old) | set(stage.settings) if k not in ignore}
        assert {k: stage.settings.get(k) for k in same} == {k: old.get(k) for k in same}, stage.name
    others = ['data-train', 'data-val', 'export', 'eval_camseg', 'eval_baseline', 'comparison']
    assert [s.name for s in single if s.kind not in TRAIN_KINDS] == others


def test_dry_run_prints_the_plan(capsys):
    assert train(['recipe', str(ROOT / 'recipes' / 'demo.yaml'), '--out', R, '--dry-run']) == 0
    out = capsys.readouterr().out
    assert 'recipe demo_model' in out and '64 stages' in out and ' 60. export [export]' in out
    assert '0 stage(s) done (skipped), 0 interrupted (resumed), 64 to run' in out


def test_zero_shot_recipe_is_the_single_schedule_without_adverse_augmentation():
    single = {s.name: s for s in load_recipe(ROOT / 'recipes' / 'demo_single.yaml', out=R).stages}
    zero = {s.name: s for s in load_recipe(ROOT / 'recipes' / 'zero_shot.yaml', out=R).stages}
    clear = {'weather': 0, 'jitter': 0, 'low_light': 0, 'noise': 0}
    for name in ('vae', 'camseg', 'camseg_gen', 'baseline'):
        ours, theirs = zero[name].settings, single[name].settings
        assert {k: ours[k] for k in clear} == clear, name
        assert {k: v for k, v in ours.items() if k not in clear} == \
               {k: v for k, v in theirs.items() if k not in clear}, name
    pure = zero['pure'].settings
    assert pure['image_stem'] == 0 and pure['pixel_stem'] == 0
    assert pure['steps'] == zero['camseg'].settings['steps']
    for name in ('eval_camseg', 'eval_baseline'):
        assert zero[name].settings['corruptions'] == 'all' and zero[name].settings['severities'] == [1, 2, 3]


def test_clear_only_flags_reach_the_augmentation():
    from camseg_core.data.augment import AugmentConfig
    flags = ['--weather', '0', '--jitter', '0', '--low-light', '0', '--noise', '0']
    args = vars(train_parser().parse_args(['vae', '--data', 'generated:d', '--out', 'o'] + flags))
    job = TrainJob.from_settings(args.pop('stage'), args)
    assert job.options(1).augmentation() == AugmentConfig(weather=0, jitter=0, low_light=0, noise=0)
    default = TrainJob.from_settings('vae', {'data': 'd', 'out': 'o'})
    assert default.options(1).augmentation() == AugmentConfig()
    with pytest.raises(ValueError, match="unknown setting.*nois .did you mean noise"):
        TrainJob.from_settings('vae', {'data': 'd', 'out': 'o', 'nois': 0})
