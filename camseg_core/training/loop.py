"""Generic trainer for every stage.

AdamW, warm-up + cosine/constant schedule, EMA, clipping, autocast, resumable checkpoints, TensorBoard, tqdm
and DistributedDataParallel (started by torchrun, no code change). A stage hands over the full `model` (what
is saved), a `step_module` whose forward(batch) returns (loss, {name: scalar tensor or float}) and whose
trainable parameters belong to `model`, a batch iterator factory and a preview. Each step is read (loss, grad
norm, logs) one step after its launch, so the host does not wait for the device between steps.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..checkpoint import save_pretrained
from ..device import PRECISIONS, resolve_device
from . import state as st

SCHEDULES = ('cosine', 'constant')


class NonFiniteLoss(RuntimeError):
    """Training stopped because the loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping settings shared by every stage."""

    out: Path  # run directory: checkpoint (config.json + model.safetensors), train_state*, tb/, samples/
    steps: int = 10000  # total optimisation steps; the schedule ends here
    batch_size: int = 8  # per process
    lr: float = 1e-4  # peak learning rate
    weight_decay: float = 0.02  # AdamW decoupled weight decay
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW betas
    warmup: int = 500  # linear warm-up steps
    schedule: str = 'cosine'  # after warm-up: 'cosine' decay to 0, or 'constant'
    ema: float = 0.999  # EMA decay of the saved weights (ramped up as min(ema, (1 + t) / (10 + t)))
    clip: float = 1.0  # gradient norm clipping; 0 disables
    precision: str = 'fp32'  # 'fp32', or 'bf16' / 'fp16' autocast (fp16 with a gradient scaler)
    save_every: int = 500  # checkpoint interval in steps (also saved at the end)
    log_every: int = 10  # TensorBoard scalar interval
    sample_every: int = 500  # TensorBoard / samples/*.png preview interval; 0 disables
    seed: int = 0
    stop_after: int | None = None  # leave after this step without a final save, as if killed (tests)

    def validate(self) -> 'TrainConfig':
        """Raise ValueError naming the first bad field; return self."""
        for name in ('steps', 'batch_size', 'save_every', 'log_every'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f'lr must be a positive number, got {self.lr}')
        if self.warmup < 0 or self.sample_every < 0 or self.clip < 0 or self.weight_decay < 0:
            raise ValueError('warmup, sample_every, clip and weight_decay must be >= 0')
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f'ema must be in [0, 1), got {self.ema}')
        if self.schedule not in SCHEDULES:
            raise ValueError(f'schedule must be one of {SCHEDULES}, got {self.schedule!r}')
        if self.precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}')
        if self.stop_after is not None and self.stop_after < 1:
            raise ValueError(f'stop_after must be >= 1, got {self.stop_after}')
        return self

    def lr_at(self, step: int) -> float:
        """Learning rate of optimisation step `step` (0-based)."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.schedule == 'constant':
            return self.lr
        progress = min(1.0, (step - self.warmup) / max(1, self.steps - self.warmup))
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class Dist:
    """Where this process runs: rank, world size and device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device('cpu')

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = 'auto') -> Dist:
    """Pick the device once; under torchrun (WORLD_SIZE > 1) join the process group (nccl on CUDA, gloo)."""
    dev = resolve_device(device)
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return Dist(device=dev)
    rank, local = int(os.environ['RANK']), int(os.environ.get('LOCAL_RANK', '0'))
    if dev.type == 'cuda':
        dev = torch.device('cuda', local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group('nccl' if dev.type == 'cuda' else 'gloo')
    return Dist(rank=rank, world=world, device=dev)


def teardown_distributed() -> None:
    """Leave the process group, if any."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}


class Trainer:
    """Runs one stage. `train()` returns the last step reached."""

    def __init__(self, config: TrainConfig, env: Dist, model: nn.Module, step_module: nn.Module,
                 batches: Callable[[int], Iterator[dict]], preview: Callable[[nn.Module], np.ndarray] | None,
                 meta: dict):
        self.cfg, self.env, self.meta = config.validate(), env, meta
        self.out = Path(config.out)
        self.model = model.to(env.device)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        if not names:
            raise ValueError('nothing to train: every parameter is frozen')
        ema_params = dict(self.ema.named_parameters())
        self.pairs = [(ema_params[n], p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.ema_buffers = [b for _, b in self.ema.named_buffers()]
        self.model_buffers = [b for _, b in self.model.named_buffers()]
        self.step_module = step_module.to(env.device)
        self.ddp = self.step_module
        if env.world > 1:
            ids = [env.device] if env.device.type == 'cuda' else None
            self.ddp = DistributedDataParallel(self.step_module, device_ids=ids)
        params = [p for _, p in self.pairs]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]  # biases, norms, positional tables stay undecayed
        self.optimizer = torch.optim.AdamW([{'params': decay, 'weight_decay': config.weight_decay},
                                            {'params': no_decay, 'weight_decay': 0.0}],
                                           lr=config.lr, betas=config.betas)
        self.scaler = torch.amp.GradScaler(env.device.type, enabled=config.precision == 'fp16')
        self.batches, self.preview = batches, preview
        self.step, self.last_saved, self.last_loss = 0, 0, float('nan')
        self.losses: list[float] = []  # loss of every step run by this process (rank-averaged)
        self.writer = None

    # ---- state ----
    def resume(self, fresh_scaler: bool = False, state: tuple[dict, dict] | None = None) -> int:
        """Load OUT's training state (model, EMA, optimizer, scaler, step, RNG); returns the step.

        `state`: the (header, tensors) of `st.load_state(OUT)` when already read. A state without a gradient
        scaler (saved without fp16) resumed into fp16 is a ValueError, unless `fresh_scaler` allows starting a
        new scaler.
        """
        header, tensors = state if state is not None else st.load_state(self.out)
        if header.get('stage') != self.meta.get('stage'):
            raise ValueError(f'{self.out / st.STATE_JSON}: a {header.get("stage")!r} run; cannot resume it '
                             f'as {self.meta.get("stage")!r}')
        scaler = header.get('scaler') or {}
        if self.scaler.is_enabled() and not scaler and not fresh_scaler:
            saved = header.get('train', {}).get('precision', 'unknown')
            raise ValueError(f'{self.out / st.STATE_JSON}: saved with precision {saved} and no gradient '
                             f'scaler state; resuming into fp16 needs one (allow a fresh scaler, or resume '
                             f'with --precision {saved})')
        st.restore_weights(self.model, tensors)
        self.ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith('ema.')})
        self.optimizer.load_state_dict(st.unflatten_optimizer(tensors, header['optimizer']))
        if scaler:
            self.scaler.load_state_dict(scaler)
        self.step = self.last_saved = int(header['step'])
        if not st.restore_rng(tensors, self.env.rank, self.env.device):
            torch.manual_seed(self.cfg.seed + 7919 * self.step + self.env.rank)
        return self.step

    def _rng_of_all_ranks(self) -> dict[str, torch.Tensor]:
        own = st.rng_tensors(self.env.rank, self.env.device)
        if self.env.world == 1:
            return own
        gathered: list = [None] * self.env.world
        dist.all_gather_object(gathered, {k: v.cpu() for k, v in own.items()})
        return {k: v for part in gathered for k, v in part.items()}

    def save(self) -> None:
        """Write the resumable state and the EMA inference checkpoint (rank 0; every rank must call)."""
        rng = self._rng_of_all_ranks()
        if self.env.main:
            optim_tensors, optim_meta = st.flatten_optimizer(self.optimizer.state_dict())
            tensors = {**{f'model.{k}': v for k, v in self.model.state_dict().items()},
                       **{f'ema.{k}': v for k, v in self.ema.state_dict().items()}, **optim_tensors, **rng}
            info = {**self.meta, 'step': self.step, 'world_size': self.env.world, 'loss': self.last_loss,
                    'train': {k: str(v) if isinstance(v, Path) else v
                              for k, v in dataclasses.asdict(self.cfg).items()}}
            st.save_state(self.out, self.step, tensors, {**info, 'optimizer': optim_meta,
                                                         'scaler': self.scaler.state_dict()})
            save_pretrained(self.ema, self.out, meta=info)
        self.last_saved = self.step
        if self.env.world > 1:
            dist.barrier()

    # ---- one step ----
    def _update_ema(self) -> None:
        decay = min(self.cfg.ema, (1 + self.step) / (10 + self.step))
        with torch.no_grad():  # one fused call each (a loop of per-tensor kernels is slow on a GPU)
            torch._foreach_lerp_([e for e, _ in self.pairs], [p for _, p in self.pairs], 1.0 - decay)
            if self.ema_buffers:
                torch._foreach_copy_(self.ema_buffers, self.model_buffers)

    def _optimise(self, batch: dict) -> dict:
        """Launch one step and return its readout (`_read`); nothing here waits for the device."""
        cfg, dev = self.cfg, self.env.device
        lr = cfg.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group['lr'] = lr
        with torch.autocast(dev.type, dtype=PRECISIONS[cfg.precision], enabled=cfg.precision != 'fp32'):
            loss, logs = self.ddp(_to(batch, dev))
        value = loss.detach().float().clone()
        if self.env.world > 1:
            dist.all_reduce(value)
            value /= self.env.world
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        params = [p for _, p in self.pairs]
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip if cfg.clip > 0 else float('inf'))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self._update_ema()
        readout = {'step': self.step + 1, 'lr': lr, 'logs': logs, 'event': None,
                   'values': torch.stack([value, norm.detach().float()])}
        if dev.type == 'cuda':  # copied while the device runs on; read once the event has passed
            readout['values'] = readout['values'].to('cpu', non_blocking=True)
            readout['event'] = torch.cuda.Event()
            readout['event'].record()
        return readout

    def _read(self, readout: dict | None) -> tuple[float, float] | None:
        """Return (loss, grad norm) of a launched step, waiting for it only; NonFiniteLoss if the loss is.

        Steps are read one behind the launches, so the host queues step t + 1 while the device runs step t:
        a small model is otherwise bound by the host's launches. A non-finite loss is still caught before
        anything is saved: `train` reads every launched step before it calls `save`.
        """
        if readout is None:
            return None
        if readout['event'] is not None:
            readout['event'].synchronize()
        loss, norm = (float(v) for v in readout['values'])
        if not math.isfinite(loss):
            raise NonFiniteLoss(f'non-finite loss ({loss}) at step {readout["step"]}; the last checkpoint in '
                                f'{self.out} is from step {self.last_saved}. Lower --lr, raise --warmup, or '
                                f'use --precision fp32.')
        self.last_loss = loss
        self.losses.append(loss)
        return loss, norm

    def _sample(self) -> None:
        grid = self.preview(self.ema)
        self.writer.add_image('samples', grid, self.step, dataformats='HWC')
        folder = self.out / 'samples'
        folder.mkdir(exist_ok=True)
        cv2.imwrite(str(folder / f'step_{self.step:07d}.png'), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))

    def _report(self, readout: dict | None, bar) -> None:
        """Read a launched step (`_read`) and show it: progress bar, and TensorBoard every log_every steps."""
        read = self._read(readout)
        if read is None:
            return
        (loss, norm), step, cfg = read, readout['step'], self.cfg
        bar.update(step - bar.n)
        bar.set_postfix(loss=f'{loss:.4f}', lr=f'{readout["lr"]:.2e}')
        if self.env.main and (step % cfg.log_every == 0 or step == 1):
            now = time.perf_counter()
            for key, val in {'loss': loss, 'grad_norm': norm, **readout['logs'], 'lr': readout['lr']}.items():
                self.writer.add_scalar(f'train/{key}', float(val), step)
            self.writer.add_scalar('train/sec_per_step', (now - self.tick) / cfg.log_every, step)
            self.tick = now

    def train(self) -> int:
        """Run from `self.step` to `config.steps` (or `stop_after`); returns the step reached."""
        cfg, main = self.cfg, self.env.main
        if main:
            from torch.utils.tensorboard import SummaryWriter
            self.out.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(self.out / 'tb'), purge_step=self.step or None)
        self.step_module.train()
        batches = self.batches(self.step)
        bar = tqdm(total=cfg.steps, initial=self.step, desc=self.meta.get('stage', 'train'), disable=not main,
                   dynamic_ncols=True)
        self.tick = time.perf_counter()
        pending = None  # the last launched step, not read yet
        try:
            while self.step < cfg.steps:
                if cfg.stop_after is not None and self.step >= cfg.stop_after:
                    break
                launched = self._optimise(next(batches))
                self.step += 1
                self._report(pending, bar)
                pending = launched
                if main and self.preview and cfg.sample_every and self.step % cfg.sample_every == 0:
                    self._sample()
                if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                    self._report(pending, bar)
                    pending = None
                    self.save()
            self._report(pending, bar)
        finally:
            bar.close()
            if self.writer is not None:
                self.writer.close()
        return self.step

    def parameter_checksum(self) -> list[float]:
        """Sum of every trained parameter, per rank (all ranks must call); equal entries mean ranks agree."""
        total = torch.stack([p.detach().double().sum() for _, p in self.pairs]).sum().reshape(1)
        if self.env.world == 1:
            return [total.item()]
        parts = [torch.zeros_like(total) for _ in range(self.env.world)]
        dist.all_gather(parts, total)
        return [t.item() for t in parts]
