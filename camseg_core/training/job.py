"""One training run as a library call: `run(stage, settings)` does what `camseg-train STAGE --flags` does.

The settings carry camseg-train's flag names with '_' for '-' (`steps`, `batch_size`, `class_weight`, ...);
`TrainJob` holds them with their defaults, which the command's parser reuses, so each default is written once.
Under torchrun every process calls `run` with the same settings; the first one writes the checkpoint.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch

from ..config import parse_size as config_parse_size
from . import state as st
from .build import build_stage_model, calibrate_latent_scale, check_preset, encoder_trained, init_stage
from .data import default_workers, open_training_data
from .loop import Trainer, TrainConfig, setup_distributed
from .resume import check_resume, run_settings, saved_settings
from .stages import DEFAULT_LR, STAGES, StageOptions, stage_data, step_module


def parse_size(value) -> tuple[int, int]:
    """Parse a training size: `config.parse_size` with each side at least 16."""
    return config_parse_size(value, minimum=16)


@dataclass
class _JobSettings:
    """The settings of a job that are neither `TrainConfig`'s nor `StageOptions`' (see `TrainJob`)."""

    stage: str  # one of STAGES: 'vae', 'segmenter' or 'baseline'
    data: list[str]  # dataset specs: cityscapes:ROOT:SPLIT, acdc:ROOT:CONDITION:SPLIT, generated:ROOT
    out: Path  # run directory
    resume: bool = False  # continue the run saved in out
    allow_change: str = ''  # with resume: comma-separated settings that may differ from the saved run
    lr: float | None = None  # peak learning rate (None: DEFAULT_LR of the stage)
    device: str = 'auto'  # auto, cpu, cuda (torchrun: each process its LOCAL_RANK)
    workers: int | None = None  # loader workers (None: the cores per process less one, 2 to 16)
    no_augment: bool = False  # letterbox samples instead of random scale/crop (StageOptions.augment)
    stop_after: int | None = None  # stop after this step without a final save, as if killed (tests)
    quiet: bool = field(default=False, repr=False)  # no progress lines (the recipe runner's own choice)


class _Job(_JobSettings):
    """The methods of `TrainJob`."""

    @classmethod
    def from_settings(cls, stage: str, settings: Mapping) -> 'TrainJob':
        """Build a job from settings named like the flags; ValueError naming unknown or bad settings."""
        if stage not in STAGES:
            raise ValueError(f'unknown training stage {stage!r}; choose from {", ".join(STAGES)}')
        names = [f.name for f in dataclasses.fields(cls) if f.name != 'stage']
        unknown = [k for k in settings if k not in names]
        if unknown:
            hints = [f'{k} (did you mean {", ".join(difflib.get_close_matches(k, names, 2))}?)'
                     if difflib.get_close_matches(k, names, 2) else k for k in unknown]
            raise ValueError(f'unknown setting(s) of a {stage} stage: {"; ".join(hints)}')
        missing = [k for k in ('data', 'out') if settings.get(k) in (None, '', [])]
        if missing:
            raise ValueError(f'a {stage} stage needs the setting(s) {", ".join(missing)}')
        values = dict(settings)
        values['data'] = [values['data']] if isinstance(values['data'], str) else list(values['data'])
        values['out'] = Path(values['out'])
        if values.get('init') is not None:
            values['init'] = Path(values['init'])
        if values.get('image_size') is not None:
            values['image_size'] = parse_size(values['image_size'])
        if isinstance(values.get('allow_change'), (list, tuple)):
            values['allow_change'] = ','.join(values['allow_change'])
        return cls(stage=stage, **values)

    def options(self, workers: int) -> StageOptions:
        """Return the stage options of this job."""
        return StageOptions(stage=self.stage, augment=not self.no_augment, workers=workers,
                            **{k: getattr(self, k) for k in _FROM_OPTIONS})

    def config(self) -> TrainConfig:
        """Return the optimisation settings of this job, validated."""
        lr = self.lr if self.lr is not None else DEFAULT_LR[self.stage]
        return TrainConfig(out=self.out, lr=lr, stop_after=self.stop_after,
                           **{k: getattr(self, k) for k in _FROM_CONFIG}).validate()


# A job's other settings are TrainConfig's and StageOptions' fields with their defaults (betas, augment and
# workers excepted), so that a setting is declared once, where the library reads it.
_OWN = {f.name for f in dataclasses.fields(_JobSettings)}
_CONFIG_FIELDS = [f for f in dataclasses.fields(TrainConfig) if f.name not in _OWN | {'betas'}]
_OPTION_FIELDS = [f for f in dataclasses.fields(StageOptions) if f.name not in _OWN | {'stage', 'augment'}]
_FROM_CONFIG, _FROM_OPTIONS = [f.name for f in _CONFIG_FIELDS], [f.name for f in _OPTION_FIELDS]
TrainJob = dataclasses.make_dataclass(
    'TrainJob', [(f.name, f.type, field(default=f.default)) for f in _CONFIG_FIELDS + _OPTION_FIELDS],
    bases=(_Job,),
    namespace={'__doc__': "The settings of one training run; the names are camseg-train's flags ('-' "
               "written '_'): `_JobSettings`' own, then `TrainConfig`'s and `StageOptions`' (see there).",
               '__module__': __name__})


def job_defaults() -> dict:
    """Return {setting: default} of every setting of a training job (the flags' defaults)."""
    return {f.name: f.default for f in dataclasses.fields(TrainJob)
            if f.default is not dataclasses.MISSING}


@dataclass
class TrainResult:
    """What a training run reached."""

    stage: str
    out: Path
    step: int  # the last optimisation step run
    steps: int  # the steps the schedule ends at
    last_saved: int  # step of the checkpoint in out
    loss: float  # the last step's loss (rank-averaged)
    seconds: float  # wall time of this call

    @property
    def finished(self) -> bool:
        """Whether the run reached its last step (and saved it)."""
        return self.step >= self.steps


def _say(env, job: TrainJob, text: str) -> None:
    if env.main and not job.quiet:
        print(text, flush=True)


def _restore(job: TrainJob, config: TrainConfig, opts: StageOptions, env) -> tuple | None:
    """With job.resume: read the saved state and check the settings against it; return (header, tensors)."""
    allow = {name.strip() for name in job.allow_change.split(',') if name.strip()}
    if not job.resume:
        if st.has_state(job.out):
            raise ValueError(f'{job.out} already holds a training run; pass --resume (recipe: resume: true) '
                             'to continue it or choose another --out')
        if allow:
            raise ValueError('--allow-change only applies with --resume')
        return None
    header, tensors = st.load_state(job.out)
    saved = saved_settings(header)
    size = job.image_size or saved.get('image_size') or header['model_config']['image_size']
    now = run_settings(config, opts, job.data, env.world, size)
    changed = check_resume(job.out, saved, now, allow)
    if changed:
        _say(env, job, 'resuming with changed settings (--allow-change): '
             + ', '.join(f'{k} {saved[k]!r} -> {now[k]!r}' for k in changed))
    return header, tensors


def train(job: TrainJob) -> TrainResult:
    """Train one stage as the job says; return what it reached (see `TrainResult`)."""
    start = time.perf_counter()
    env = setup_distributed(job.device)
    workers = job.workers if job.workers is not None else default_workers(
        int(os.environ.get('LOCAL_WORLD_SIZE', env.world)))
    if workers < 0:
        raise ValueError(f'workers must be >= 0, got {workers}')
    opts, config = job.options(workers), job.config()
    saved = _restore(job, config, opts, env)
    check_preset(job.stage, job.preset)
    torch.manual_seed(job.seed)  # the same initial weights on every rank
    model = build_stage_model(opts, saved[0] if saved else None)
    torch.manual_seed(job.seed + 1 + env.rank)  # masks and noise differ between ranks
    dataset = open_training_data(job.data)
    if saved:  # the saved weights, before the data stage uses the model (cache_latents encodes with it)
        st.restore_weights(model, saved[1])
    model.to(env.device)
    if job.stage == 'segmenter' and saved is None and encoder_trained(job.init):
        scale = calibrate_latent_scale(model, dataset, env.device)
        _say(env, job, f'segmenter: latent scale set to {scale:.4f} (1 / std of the mask latents)')
    meta = {'stage': job.stage, 'model_type': model.model_type, 'model_config': model.config.to_dict(),
            'data': job.data, 'init': str(job.init) if job.init else None,
            'settings': run_settings(config, opts, job.data, env.world, model.config.image_size)}
    if job.stage == 'vae' and job.init is not None and init_stage(job.init) == 'segmenter':
        meta['generator'] = True  # it keeps the segmenter's trained transformer and head (see init_stage)
    loss_step = step_module(opts, model, dataset)
    if getattr(loss_step, 'class_weights', None) is not None:
        meta['class_weights'] = [round(w, 4) for w in loss_step.class_weights.tolist()]
        _say(env, job, f'segmenter: class-rarity weights {meta["class_weights"]}')
    cuda = [env.device] if env.device.type == 'cuda' else []
    with torch.random.fork_rng(devices=cuda):  # building the data (e.g. a DataLoader's seed) leaves the
        # training random stream alone, so a resumed run continues exactly where the saved state left it
        batches, preview, cache = stage_data(opts, model, dataset, job.batch_size, env, job.seed,
                                             config.precision)
    if cache is not None:
        meta['cache'] = cache.to_dict()
        _say(env, job, f'cache: {cache.items} items in {cache.seconds:.2f} s = {cache.items_per_s:.1f} '
             f'items/s ({cache.workers} workers, {cache.precision}, {cache.world} process(es))')
    trainer = Trainer(config, env, model, loss_step, batches, preview, meta)
    if saved:
        trainer.resume(fresh_scaler='precision' in job.allow_change.split(','), state=saved)
    _say(env, job, f'{job.stage}: {len(dataset)} training items, {env.world} process(es) on {env.device}, '
         f'steps {trainer.step} -> {config.steps}')
    step = trainer.train()
    sums = trainer.parameter_checksum()
    if env.world > 1:
        agree = max(sums) - min(sums) <= 1e-9 * max(1.0, abs(sums[0]))
        _say(env, job, f'ranks in sync: {agree} (parameter checksums {sums})')
        if not agree:
            raise RuntimeError(f'ranks diverged: parameter checksums {sums}')
    done = 'finished' if step >= config.steps else f'stopped after step {step} (stop_after)'
    _say(env, job, f'{job.stage}: {done}; checkpoint from step {trainer.last_saved} in {job.out}')
    return TrainResult(job.stage, job.out, step, config.steps, trainer.last_saved, trainer.last_loss,
                       time.perf_counter() - start)


def run(stage: str, settings: Mapping) -> TrainResult:
    """Train `stage` ('vae', 'segmenter', 'baseline') with camseg-train's settings, e.g.

    run('vae', {'data': 'generated:data', 'out': 'runs/vae', 'steps': 1200, 'class_weight': 2.0}).
    """
    return train(TrainJob.from_settings(stage, settings))
