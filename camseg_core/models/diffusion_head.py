"""Per-token diffusion head: a residual MLP conditioned on z through AdaLN.

Its whole diffusion process hides behind two calls: `loss(target, z)` in training and
`sample(z, ...)` at inference. Schedules and step rules come from diffusers.
"""
from __future__ import annotations

import math

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from ..config import DiffusionHeadConfig


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

    def forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Predict the velocity v.

        x: (M, C) noisy tokens, t: (M,) timesteps, z: (M, D) conditions -> (M, C).
        """
        c = self.time_embed(timestep_embedding(t, self.config.width)) + self.cond_embed(z)  # (M, W)
        h = self.input_proj(x)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_ada(c).chunk(2, dim=-1)
        return self.output_proj(self.final_norm(h) * (1 + scale) + shift)

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

    @torch.no_grad()
    def sample(self, z: torch.Tensor, steps: int = 100, scheduler: str = 'ddpm', temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw one token per condition. z: (M, D) -> (M, C)."""
        sched, eta = self.make_scheduler(steps, scheduler)
        x = torch.randn((z.shape[0], self.token_channels), generator=generator, device=z.device,
                        dtype=torch.float32)
        if eta == 0:  # deterministic steps: the temperature scales the starting noise instead
            x = x * temperature
        for t in sched.timesteps:
            t_batch = torch.full((z.shape[0],), int(t), device=z.device, dtype=torch.long)
            v = self(x.to(z.dtype), t_batch, z).float()
            noise = None
            if eta > 0:
                noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                noise = temperature * noise
            x = sched.step(v, int(t), x, eta=eta, variance_noise=noise).prev_sample
        return x
