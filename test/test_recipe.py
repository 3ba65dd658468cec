"""camseg-train recipe: the plan, real training stages, re-runs that skip, resume or refuse, the summary."""
import json
import os
import subprocess
import sys

import pytest

from camseg_core.cli.train import main as train
from camseg_core.training import state as st
from camseg_core.training.recipe import load_recipe

RECIPE = """
name: tiny
vars:
  data: ${run}/data
  steps: 3
stages:
  - {name: data, kind: synth, settings: {out: '${data}', num: 4, split: train, seed: 1, size: 32x64,
                                         conditions: clear}}
  - {name: val, kind: synth, settings: {out: '${data}', num: 1, split: val, seed: 2, size: 32x64,
                                        conditions: clear}}
  - name: base
    kind: baseline
    settings: {data: 'generated:${data}', preset: micro, image_size: 32x64, steps: '${steps}', batch_size: 2,
               warmup: 0, workers: 0, save_every: 1, sample_every: 0, device: cpu}
  - {name: eval, kind: eval, settings: {checkpoint: '${run}/base', data: 'generated:${data}', device: cpu,
                                        batch_size: 1}}
"""


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / 'tiny.yaml'
    path.write_text(RECIPE)
    return path


def test_recipe_runs_skips_resumes_and_refuses_changes(tmp_path, recipe, capsys):
    run = tmp_path / 'run'
    # interrupted in the training stage (as if killed after step 2): the stage stays unfinished
    assert train(['recipe', str(recipe), '--out', str(run), '--set', 'base.stop_after=2']) == 0
    out = capsys.readouterr().out
    assert 'recipe tiny' in out and '3. base [baseline]' in out and 'steps=3' in out and 'preset=micro' in out
    assert 'stopped before its last step' in out
    assert st.load_state(run / 'base')[0]['step'] == 2
    assert json.loads((run / 'stages' / 'base.json').read_text())['status'] == 'running'
    # the second run skips the finished stages and resumes the interrupted one from its saved state
    assert train(['recipe', str(recipe), '--out', str(run)]) == 0
    out = capsys.readouterr().out
    assert '== data: done before, skipped' in out and 'interrupted before: resuming' in out
    assert 'steps 2 -> 3' in out
    summary = json.loads((run / 'summary.json').read_text())
    rows = {r['stage']: r for r in summary['stages']}
    assert rows['data']['status'].startswith('skipped') and rows['base']['status'] == 'ran'
    assert rows['base']['metrics']['steps'] == 3 and rows['base']['metrics']['loss'] > 0
    assert 0 <= rows['eval']['metrics']['miou clear'] <= 100
    assert '| base | baseline | ran |' in (run / 'summary.md').read_text()
    assert (run / 'logs' / 'base.log').is_file() and (run / 'eval' / 'metrics.json').is_file()
    # a third run does nothing; a changed setting is refused, naming it, before anything runs
    assert train(['recipe', str(recipe), '--out', str(run), '--dry-run']) == 0
    assert '4 stage(s) done (skipped), 0 interrupted (resumed), 0 to run' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        train(['recipe', str(recipe), '--out', str(run), '--set', 'steps=4', '--set', 'eval.batch_size=2'])
    err = capsys.readouterr().err
    assert 'base: steps (3 -> 4)' in err and 'eval: batch_size (1 -> 2)' in err
    assert st.load_state(run / 'base')[0]['step'] == 3


def test_bad_recipes_and_overrides_are_named(tmp_path, recipe):
    with pytest.raises(ValueError, match='no variable .stepz'):
        load_recipe(recipe, ['stepz=2'])
    with pytest.raises(ValueError, match='no stage .nope'):
        load_recipe(recipe, ['nope.steps=2'])
    assert load_recipe(recipe, ['*.batch_size=4']).stages[2].settings['batch_size'] == 4
    bad = tmp_path / 'bad.yaml'
    bad.write_text(RECIPE.replace('kind: baseline', 'kind: baseline_x'))
    with pytest.raises(ValueError, match="unknown kind 'baseline_x'"):
        load_recipe(bad)
    bad.write_text(RECIPE.replace("'${steps}'", "'${stps}'"))
    with pytest.raises(ValueError, match=r'unknown variable \$\{stps\}'):
        load_recipe(bad)
    bad.write_text(RECIPE.replace('warmup: 0', 'warmpu: 0'))
    with pytest.raises(SystemExit):  # the stage's own check: unknown setting, with the near names
        train(['recipe', str(bad), '--out', str(tmp_path / 'r'), '--set', 'data.num=0', '--set', 'val.num=0'])


def test_repeat_entries_keep_the_values_before_them(tmp_path):
    path = tmp_path / 'r.yaml'
    path.write_text("""
vars: {x: 1}
stages:
  - repeat: [{round: 1, w: a}, {round: 2}, {round: 3, w: b}]
    stages: [{name: 'e${round}', kind: export, settings: {source: '${w}-${x}'}}]
""")
    recipe = load_recipe(path, ['x=5'], out=tmp_path / 'run')
    expected = [('e1', 'a-5'), ('e2', 'a-5'), ('e3', 'b-5')]
    assert [(s.name, s.settings['source']) for s in recipe.stages] == expected
    assert recipe.stages[0].settings['out'] == str(tmp_path / 'run' / 'e1')


def test_recipe_under_torchrun_with_two_gloo_processes(tmp_path, recipe):
    """Training stages run on both ranks (DDP), the others on rank 0 while rank 1 waits; one summary."""
    run = tmp_path / 'run'
    command = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '-m',
               'camseg_core.cli.train', 'recipe', str(recipe), '--out', str(run),
               '--set', 'base.batch_size=1']
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'baseline: 4 training items, 2 process(es)' in proc.stdout and 'ranks in sync: True' in proc.stdout
    assert proc.stdout.count('recipe tiny (') == 1  # the plan, printed by rank 0 only
    rows = json.loads((run / 'summary.json').read_text())['stages']
    assert [r['status'] for r in rows] == ['ran'] * 4 and st.load_state(run / 'base')[0]['world_size'] == 2
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0 and proc.stdout.count('done before, skipped') == 4


def test_scale_multiplies_the_training_steps_and_warmup_only(tmp_path, recipe):
    plain = load_recipe(recipe, ['steps=40', 'base.warmup=10'])
    scaled = load_recipe(recipe, ['steps=40', 'base.warmup=10'], scale=0.05)
    assert plain.stages[2].settings['steps'] == 40 and plain.stages[2].settings['warmup'] == 10
    assert scaled.stages[2].settings['steps'] == 2 and scaled.stages[2].settings['warmup'] == 1  # at least 1
    assert scaled.stages[0].settings == plain.stages[0].settings  # synth and eval keep their settings
    assert scaled.stages[3].settings == plain.stages[3].settings
    assert 'scale 0.05' in scaled.overrides
    for bad in (0, -1, float('nan')):
        with pytest.raises(ValueError, match='scale must be'):
            load_recipe(recipe, scale=bad)
