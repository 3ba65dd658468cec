"""Run a recipe (see recipe.py): the stages in order, each through its library function.

A stage writes RUN/stages/<name>.json when it starts (status 'running') and when it ends (status 'done', wall
time, key metrics). On a second run a done stage with the same settings is skipped, an interrupted training
stage resumes from its saved state (other kinds run again: their output is deterministic), and a stage whose
settings differ from its marker's stops the run before anything starts, naming the settings that changed.
RUN/summary.md and summary.json list every stage with its status, wall time and key metrics.

Under torchrun every process runs the recipe: training stages on all ranks (DDP), the other kinds on rank 0
while the others wait; the run directory must be on a file system that every node sees.
"""
from __future__ import annotations

import contextlib
import datetime
import gc
import inspect
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ..checkpoint import export_pretrained, read_config
from ..data.synth.writer import expand_conditions, write_dataset
from ..evaluation.checkpoint_eval import evaluate_checkpoint
from ..evaluation.compare import compare, load_runs, write_comparison
from . import state as st
from .job import TrainJob, parse_size, train
from .loop import setup_distributed
from .recipe import TRAIN_KINDS, Recipe, Stage, describe

MARKERS = 'stages'  # RUN/stages/<stage>.json
UNCOMPARED = ('workers', 'device', 'stop_after')  # speed only (stop_after: tests); a done stage stays done
SAMPLER = ('num_iter', 'steps', 'temperature', 'ensemble', 'exposure_floor')


def _marker(run: Path, stage: Stage) -> Path:
    return run / MARKERS / f'{stage.name}.json'


def _plain(settings: dict) -> dict:
    return json.loads(json.dumps({k: v for k, v in settings.items() if k not in UNCOMPARED}, default=str))


def stage_status(run: Path, stage: Stage) -> tuple[str, list[str]]:
    """Return ('new' | 'done' | 'interrupted' | 'changed', changed settings as 'name (old -> new)')."""
    path = _marker(run, stage)
    if not path.is_file():
        return 'new', []
    try:
        marker = json.loads(path.read_text())
        old = marker['settings']
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f'{path}: unreadable stage marker ({e}); delete it to run the stage again') from None
    now = _plain(stage.settings)
    old = {k: v for k, v in old.items() if k not in UNCOMPARED}
    changed = [f'{k} ({old.get(k, "unset")!r} -> {now.get(k, "unset")!r})'
               for k in sorted(set(old) | set(now))
               if old.get(k) != now.get(k)]
    if changed:
        return 'changed', changed
    return ('done' if marker.get('status') == 'done' else 'interrupted'), []


def _write_marker(run: Path, stage: Stage, **fields) -> None:
    path = _marker(run, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix('.tmp')
    tmp.write_text(json.dumps({'stage': stage.name, 'kind': stage.kind, **fields,
                               'settings': _plain(stage.settings)}, indent=2) + '\n')
    os.replace(tmp, path)


def _check(stage: Stage, allowed, required=()) -> None:
    unknown = sorted(set(stage.settings) - set(allowed))
    missing = [k for k in required if stage.settings.get(k) in (None, '')]
    if unknown or missing:
        raise ValueError(f'stage {stage.name} [{stage.kind}]: '
                         + '; '.join(([f'unknown setting(s) {", ".join(unknown)} (it takes '
                                       f'{", ".join(sorted(allowed))})'] if unknown else [])
                                     + ([f'missing {", ".join(missing)}'] if missing else [])))


def _synth(stage: Stage, resume: bool) -> dict:
    names = ('out', 'num', 'split', 'seed', 'size', 'conditions')
    _check(stage, names + ('workers',), names)
    s = stage.settings
    conditions = expand_conditions(s['conditions'])
    write_dataset(Path(s['out']), int(s['num']), s['split'], int(s['seed']), parse_size(s['size']),
                  conditions,
                  workers=int(s.get('workers', 1)))
    return {'scenes': int(s['num']), 'conditions': len(conditions)}


def _train(stage: Stage, resume: bool) -> dict:
    settings = dict(stage.settings)
    if resume and st.has_state(Path(settings['out'])):
        settings['resume'] = True  # the same settings: the trainer's own check agrees
    result = train(TrainJob.from_settings(stage.kind, settings))
    if not result.finished:
        raise _Stopped(f'stage {stage.name} stopped after step {result.step} of {result.steps}')
    return {'steps': result.step, 'loss': round(result.loss, 5)}


def _export(stage: Stage, resume: bool) -> dict:
    _check(stage, ('source', 'out', 'ensemble', 'temperature'), ('source', 'out'))
    s = stage.settings
    out = export_pretrained(s['source'], s['out'], ensemble=s.get('ensemble'),
                            temperature=s.get('temperature'))
    sampler = read_config(out)[1]['config'].get('sampler', {})
    size = sum(f.stat().st_size for f in Path(out).iterdir() if f.is_file())
    return {'ensemble': sampler.get('ensemble'), 'temperature': sampler.get('temperature'),
            'megabytes': round(size / 2 ** 20, 2)}


def _eval(stage: Stage, resume: bool) -> dict:
    names = [p for p in inspect.signature(evaluate_checkpoint).parameters if p != 'options'] + list(SAMPLER)
    _check(stage, names, ('data', 'out'))
    s = dict(stage.settings)
    result = evaluate_checkpoint(s.pop('checkpoint', None), s.pop('data'), s.pop('out'), **s)
    metrics = {}
    for i, (subset, data) in enumerate(result['datasets'].items()):
        miou = data['metrics']['miou']
        metrics[f'miou {subset}'] = None if miou is None else round(100 * miou, 2)
        ceilings = data.get('ceilings') or {}
        for kind in ('resolution', 'autoencoder') if i == 0 else ():
            if ceilings.get(kind) and ceilings[kind]['miou'] is not None:
                metrics[f'{kind} ceiling {subset}'] = round(100 * ceilings[kind]['miou'], 2)
    return metrics


def _compare(stage: Stage, resume: bool) -> dict:
    _check(stage, ('runs', 'out', 'baseline', 'reference'), ('runs', 'out'))
    s = stage.settings
    runs = s['runs']
    specs = [f'{k}={v}' for k, v in runs.items()] if isinstance(runs, dict) else list(runs)
    options = {k: s[k] for k in ('baseline', 'reference') if s.get(k) is not None}
    write_comparison(compare(load_runs(specs), **options), s['out'])
    return {'table': str(Path(s['out']) / 'comparison.md')}


RUNNERS = {'synth': _synth, 'export': _export, 'eval': _eval, 'compare': _compare,
           **{kind: _train for kind in TRAIN_KINDS}}


class _Stopped(RuntimeError):
    """A training stage stopped before its last step (stop_after): the recipe stops there, resumable."""


class _Ranks:
    """The processes of a torchrun launch (one without torchrun): rank 0 decides, the others follow."""

    def __init__(self, recipe: Recipe):
        self.world = int(os.environ.get('WORLD_SIZE', '1'))
        self.group = None
        if self.world > 1:
            devices = [s.settings.get('device', 'auto') for s in recipe.stages if s.kind in TRAIN_KINDS]
            self.rank = setup_distributed(devices[0] if devices else 'auto').rank
            # the other ranks wait for rank 0's evaluations on a CPU group without NCCL's 10-minute timeout
            self.group = dist.new_group(backend='gloo', timeout=datetime.timedelta(hours=48))
        else:
            self.rank = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, value):
        """Return rank 0's `value` on every rank."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]


class _Tee:
    """A text stream that writes to a terminal stream and a log file."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log

    def write(self, text):
        """Write `text` to both."""
        self.log.write(text)
        return self.stream.write(text)

    def flush(self):
        """Flush both."""
        self.log.flush()
        self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)  # encoding, fileno, isatty, ... of the terminal stream


@contextlib.contextmanager
def _logged(run: Path, stage: Stage, main: bool):
    """Copy what a stage prints into RUN/logs/<stage>.log (the first process only)."""
    if not main:
        yield
        return
    (run / 'logs').mkdir(parents=True, exist_ok=True)
    with open(run / 'logs' / f'{stage.name}.log', 'a') as log, \
            contextlib.redirect_stdout(_Tee(sys.stdout, log)), \
            contextlib.redirect_stderr(_Tee(sys.stderr, log)):
        yield


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def machine() -> str:
    """Return one line naming the accelerator, torch, the cores and Python."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    return f'{gpu} | torch {torch.__version__} | {cores} cores | Python {sys.version.split()[0]}'


def _statuses(recipe: Recipe) -> list[tuple[str, list[str]]]:
    statuses = [stage_status(recipe.run, s) for s in recipe.stages]
    changed = [f'{s.name}: {", ".join(c)}' for s, (status, c) in zip(recipe.stages, statuses)
               if status == 'changed']
    if changed:
        raise ValueError(f'the settings of finished or started stages in {recipe.run} changed; refusing to '
                         f'continue them: {"; ".join(changed)}. Run with their old settings, use another '
                         f'--out, '
                         f'or delete {recipe.run / MARKERS}/<stage>.json and the stage\'s output to redo it')
    return statuses


def run_recipe(recipe: Recipe, dry_run: bool = False) -> list[dict]:
    """Print the plan, run the stages not done yet, and write RUN/summary.md and summary.json.

    With `dry_run` print the plan with each stage's state only. Returns the summary's rows.
    """
    ranks = _Ranks(recipe) if not dry_run else None
    main = ranks is None or ranks.main
    shared = (lambda v: v) if ranks is None else ranks.share
    ok, statuses = shared(_attempt(lambda: _statuses(recipe)) if main else None)
    if main:
        print(describe(recipe), flush=True)
    if ok is not True:
        raise ValueError(ok)
    if dry_run:
        counts = {k: sum(1 for s, _ in statuses if s == k) for k in ('done', 'interrupted', 'new')}
        print(f'dry run: {counts["done"]} stage(s) done (skipped), {counts["interrupted"]} interrupted '
              f'(resumed), {counts["new"]} to run', flush=True)
        return []
    rows, start = [], time.perf_counter()
    for stage, (status, _) in zip(recipe.stages, statuses):
        if status == 'done':
            marker = json.loads(_marker(recipe.run, stage).read_text())
            rows.append(_row(stage, 'skipped (done before)', marker.get('seconds'),
                             marker.get('metrics', {})))
            if main:
                print(f'== {stage.name}: done before, skipped', flush=True)
            continue
        if main:
            print(f'== {stage.name} [{stage.kind}]'
                  + (' (interrupted before: resuming)' if status == 'interrupted' else ''), flush=True)
            _write_marker(recipe.run, stage, status='running')
        began = time.perf_counter()
        with _logged(recipe.run, stage, main):
            metrics = _run_stage(stage, status, shared, main)
        if metrics is None:  # stopped (stop_after): the marker stays 'running', so the next run resumes it
            rows.append(_row(stage, 'stopped', round(time.perf_counter() - began, 1), {}))
            if main:
                write_summary(recipe, rows, time.perf_counter() - start)
                print(f'recipe {recipe.name}: stage {stage.name} stopped before its last step; run the '
                      'recipe again to resume it', flush=True)
            return rows
        seconds = round(time.perf_counter() - began, 1)
        _free()
        rows.append(_row(stage, 'ran', seconds, metrics))
        if main:
            _write_marker(recipe.run, stage, status='done', seconds=seconds, metrics=metrics,
                          finished=datetime.datetime.now().isoformat(timespec='seconds'))
            write_summary(recipe, rows, time.perf_counter() - start)
    if main:
        path = write_summary(recipe, rows, time.perf_counter() - start)
        print(f'recipe {recipe.name}: done in {time.perf_counter() - start:.0f} s; see {path}', flush=True)
    return rows


def _run_stage(stage: Stage, status: str, shared, main: bool) -> dict | None:
    """Run one stage; return its key metrics, or None if a training stage stopped early (stop_after)."""
    resume = status == 'interrupted'
    if stage.kind in TRAIN_KINDS:  # every process (DDP)
        try:
            return RUNNERS[stage.kind](stage, resume)
        except _Stopped:
            return None
    outcome = shared(_attempt(lambda: RUNNERS[stage.kind](stage, resume)) if main else None)
    if outcome[0] is not True:  # only under torchrun: rank 0 failed, and every rank stops with its message
        raise ValueError(outcome[0])
    return outcome[1]


def _attempt(job):
    """Run `job` and return (True, result), or (the exception, None) on a ValueError-like failure.

    Under torchrun the outcome is shared with the other ranks, which raise the error's text in turn.
    """
    try:
        return True, job()
    except (ValueError, FileNotFoundError, OSError) as e:
        if int(os.environ.get('WORLD_SIZE', '1')) > 1:
            return str(e), None
        raise


def _row(stage: Stage, status: str, seconds, metrics: dict) -> dict:
    return {'stage': stage.name, 'kind': stage.kind, 'status': status, 'seconds': seconds, 'metrics': metrics}


def write_summary(recipe: Recipe, rows: list[dict], total: float) -> Path:
    """Write RUN/summary.json and summary.md (a table of the stages, then each comparison's table)."""
    recipe.run.mkdir(parents=True, exist_ok=True)
    info = {'recipe': recipe.name, 'file': str(recipe.path), 'run': str(recipe.run), 'machine': machine(),
            'overrides': recipe.overrides, 'total_seconds': round(total, 1), 'stages': rows}
    (recipe.run / 'summary.json').write_text(json.dumps(info, indent=2) + '\n')
    lines = [f'# recipe {recipe.name}', '', f'File: {recipe.path}; run directory {recipe.run}.', '',
             f'Machine: {info["machine"]}', '']
    if recipe.overrides:
        lines += ['Overrides: ' + ', '.join(recipe.overrides), '']
    lines += ['| stage | kind | status | wall time (s) | key metrics |', '|---|---|---|---|---|']
    for r in rows:
        metrics = ', '.join(f'{k} {v}' for k, v in r['metrics'].items() if k != 'table')
        lines.append(f'| {r["stage"]} | {r["kind"]} | {r["status"]} | {r["seconds"]} | {metrics} |')
    lines += [f'| total (this run) | | | {total:.1f} | |', '']
    for r in rows:
        table = Path(r['metrics'].get('table', '')) if r['kind'] == 'compare' else None
        if table and table.is_file():
            rel = os.path.relpath(table.parent, recipe.run)
            text = table.read_text().replace('](comparison.png)', f']({rel}/comparison.png)')
            lines += [f'## {r["stage"]}', '', text]
    path = recipe.run / 'summary.md'
    path.write_text('\n'.join(lines) + '\n')
    return path
