"""Per-token diffusion head: a residual MLP conditioned on z through AdaLN.

Its whole diffusion process hides behind two calls: `loss(target, z)` in training and
`sample(z, ...)` at inference. Schedules come from diffusers; the sampler precomputes diffusers' DDIM step
coefficients once and runs a loop without host synchronisation that a CUDA graph can capture.
"""
from __future__ import annotations

import functools
import math

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from ..config import DiffusionHeadConfig
from .graphs import GraphCache


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (N,) timesteps -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class AdaLNBlock(nn.Module):
    """Residual MLP block whose LayerNorm shift/scale and output gate come from the condition."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))
        nn.init.zeros_(self.ada[-1].weight)
        nn.init.zeros_(self.ada[-1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.ada(c).chunk(3, dim=-1)
        return x + gate * self.mlp(self.norm(x) * (1 + scale) + shift)


class DiffusionHead(nn.Module):
    """Denoiser v(x_t, t, z) for one token, plus its training loss and sampler."""

    def __init__(self, token_channels: int, cond_width: int, config: DiffusionHeadConfig):
        super().__init__()
        self.config = config
        self.token_channels = token_channels
        w = config.width
        self.time_embed = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.cond_embed = nn.Linear(cond_width, w)
        self.input_proj = nn.Linear(token_channels, w)
        self.blocks = nn.ModuleList(AdaLNBlock(w) for _ in range(config.depth))
        self.final_norm = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(w, 2 * w))
        self.output_proj = nn.Linear(w, token_channels)
        for layer in (self.final_ada[-1], self.output_proj):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        # v-prediction: the cosine schedule ends at alpha_bar ~ 2e-9, where an epsilon prediction would be
        # amplified ~2e4 times in the first sampling step; v stays well conditioned at every noise level.
        self.train_scheduler = DDPMScheduler(num_train_timesteps=config.num_train_timesteps,
                                             beta_schedule=config.beta_schedule, clip_sample=False,
                                             prediction_type='v_prediction')
        self.graphs = GraphCache()  # CUDA graphs of the sampling loop (sample(..., capture=True))
        self._tables: dict = {}  # (steps, kind, device) -> step_table on the device

    def forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Predict the velocity v.

        x: (M, C) noisy tokens, t: (M,) or (1,) timesteps, z: (M', D) conditions -> (M, C); M = E * M' (E
        samples of each condition, see `denoise`). The ONNX head step is this call.
        """
        return self.denoise(x, self.time_embed(timestep_embedding(t, self.config.width)) + self.cond_embed(z))

    def denoise(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Predict v from noisy tokens x (M, C) and the embedded time + condition c (M', W) -> (M, C).

        M is a multiple E of M': row e*M' + j of x is conditioned on c[j] (E samples of one condition, e.g.
        ensemble members), and each AdaLN modulation is computed once per condition, not per sample.
        """
        h = self.input_proj(x).view(-1, c.shape[0], c.shape[-1])  # (E, M', W)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_ada(c).chunk(2, dim=-1)  # (M', W) each, broadcast over E
        return self.output_proj(self.final_norm(h) * (1 + scale) + shift).reshape(x.shape)

    def loss(self, target: torch.Tensor, z: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Denoising loss. target: (M, C) clean tokens, z: (M, D), weight: (M,) (1 = masked token counted).

        Each token is drawn `batch_mul` times with independent noise levels.
        """
        k = self.config.batch_mul
        target, z = target.repeat(k, 1), z.repeat(k, 1)  # (k*M, C), (k*M, D)
        t = torch.randint(0, self.config.num_train_timesteps, (target.shape[0],), device=target.device)
        noise = torch.randn_like(target)
        noisy = self.train_scheduler.add_noise(target, noise, t)
        velocity = self.train_scheduler.get_velocity(target, noise, t)
        per_token = ((self(noisy, t, z) - velocity) ** 2).mean(dim=-1)  # (k*M,)
        if weight is None:
            return per_token.mean()
        weight = weight.repeat(k)
        return (per_token * weight).sum() / weight.sum().clamp_min(1.0)

    def make_scheduler(self, steps: int, kind: str) -> tuple[DDIMScheduler, float]:
        """Build an inference scheduler on the training noise schedule, and return it with its eta.

        'ddpm' is ancestral sampling: the DDIM step with eta = 1 has exactly the DDPM posterior variance and,
        unlike diffusers' DDPMScheduler.step, takes the noise from us so that a temperature can scale it.
        'ddim' is the deterministic (eta = 0) step, better with few steps.
        """
        scheduler = DDIMScheduler(num_train_timesteps=self.config.num_train_timesteps,
                                  beta_schedule=self.config.beta_schedule, clip_sample=False,
                                  set_alpha_to_one=True, timestep_spacing='trailing',
                                  prediction_type='v_prediction')
        scheduler.set_timesteps(steps)
        return scheduler, 1.0 if kind == 'ddpm' else 0.0

    def step_table(self, steps: int, kind: str) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Return the timesteps (S,), update coefficients (S, 5) and eta of `make_scheduler`'s scheduler.

        Row i holds sqrt(a_t), sqrt(1 - a_t), sqrt(a_prev), the direction weight sqrt(1 - a_prev - std^2) and
        std (eta times the DDPM posterior standard deviation), computed with the scheduler's own float32
        arithmetic, so that `sample` reproduces `DDIMScheduler.step` (v-prediction, no clipping) without it.
        """
        sched, eta = self.make_scheduler(steps, kind)
        t = sched.timesteps.long()  # (S,)
        prev = t - sched.config.num_train_timesteps // sched.num_inference_steps
        a_t = sched.alphas_cumprod[t]
        a_prev = torch.where(prev >= 0, sched.alphas_cumprod[prev.clamp_min(0)], sched.final_alpha_cumprod)
        b_t, b_prev = 1 - a_t, 1 - a_prev
        std = eta * ((b_prev / b_t) * (1 - a_t / a_prev)) ** 0.5
        direction = (1 - a_prev - std ** 2) ** 0.5
        table = torch.stack([a_t ** 0.5, b_t ** 0.5, a_prev ** 0.5, direction, std], dim=1)  # (S, 5)
        return t, table, eta

    def noise_shape(self, tokens: int, steps: int, kind: str) -> tuple[int, int, int]:
        """Return the shape (S', M, C) of the noise `sample` uses: x_T, and one draw per step for 'ddpm'."""
        return (1 + steps if kind == 'ddpm' else 1, tokens, self.token_channels)

    def draw_noise(self, tokens: int, steps: int, kind: str, generator: torch.Generator | None = None,
                   device: torch.device | str = 'cpu') -> torch.Tensor:
        """Draw the noise of `sample` (S', M, C) float32, in the order a step-by-step sampler draws it."""
        n, m, c = self.noise_shape(tokens, steps, kind)
        return torch.stack([torch.randn((m, c), generator=generator, device=device) for _ in range(n)])

    @torch.no_grad()
    def sample(self, z: torch.Tensor, steps: int = 100, scheduler: str = 'ddpm', temperature: float = 1.0,
               generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
               capture: bool = False, velocity=None, samples: int = 1) -> torch.Tensor:
        """Draw `samples` (E) tokens per condition. z: (M, D) -> (E*M, C), sample-major (row e*M + j: z[j]).

        noise: (S', E*M, C) as `draw_noise` gives it (drawn here with `generator` when None). capture: on
        CUDA, replay the whole loop from a CUDA graph per (M, dtype, setting), with the same result as eager.
        velocity: an outside denoiser `velocity(x (E*M, C), t (1,), z (M, D)) -> v (E*M, C)` with this head's
        weights (e.g. an ONNX Runtime session) called at each step instead of this module; same loop.
        """
        rows = samples * z.shape[0]
        if noise is None:
            noise = self.draw_noise(rows, steps, scheduler, generator, z.device)
        if tuple(noise.shape) != self.noise_shape(rows, steps, scheduler):
            raise ValueError(f'noise of shape {tuple(noise.shape)} given, '
                             f'{self.noise_shape(rows, steps, scheduler)} needed')
        t, table, eta = self.device_table(steps, scheduler, z.device)
        run = functools.partial(self._loop, t=t, table=table, eta=eta, temperature=temperature,
                                velocity=velocity)
        if capture and velocity is None:
            key = ('head', tuple(z.shape), samples, z.dtype, steps, scheduler, float(temperature))
            return self.graphs(key, run, z, noise.float())
        return run(z, noise.float())

    def device_table(self, steps: int, kind: str,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Return `step_table` on the device, computed once per (steps, kind, device)."""
        key = (steps, kind, str(device))
        if key not in self._tables:
            t, table, eta = self.step_table(steps, kind)
            self._tables[key] = (t.to(device), table.to(device), eta)
        return self._tables[key]

    def _loop(self, z: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, table: torch.Tensor, eta: float,
              temperature: float, velocity=None) -> torch.Tensor:
        """Run the sampling loop: no host synchronisation, no random draws, nothing recomputed per step."""
        if velocity is None:
            cond = self.cond_embed(z)  # (M', W), the same at every step
            temb = self.time_embed(timestep_embedding(t, self.config.width))  # (S, W), one row per step
        x = noise[0]  # (M, C), M = E*M'
        if eta == 0:  # deterministic steps: the temperature scales the starting noise instead
            x = x * temperature
        for i, (sa, sb, sap, direction, std) in enumerate(row.unbind() for row in table.unbind()):
            if velocity is None:
                v = self.denoise(x.to(z.dtype), temb[i] + cond).float()  # (M, C)
            else:
                v = velocity(x, t[i:i + 1], z).float()
            x0 = sa * x - sb * v
            eps = sa * v + sb * x
            x = sap * x0 + direction * eps
            if eta > 0:
                x = x + std * (temperature * noise[i + 1])
        return x
