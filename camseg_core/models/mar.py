"""Masked autoregressive transformer over image tokens (always visible) and mask tokens (masked at random).

Its output is one conditioning vector z per mask token for the diffusion head. The encoder sees the image
tokens and the visible mask tokens; the decoder sees every position, masked ones as a learned token.

The two streams share one spatial position embedding (plus a learned embedding per stream), and every mask
position in the decoder also receives the encoded image token at the same place. Both tie mask token i to
image token i from the first step; with independent position embeddings per stream the transformer has to
discover that correspondence itself, which a small model trained briefly does not (on generated scenes it
learned a generic street layout instead of following the image).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TransformerConfig
from ..labels import NUM_CLASSES


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, queries: int | None = None) -> torch.Tensor:
        """Attend over all N positions; with `queries`, output only the last `queries` positions."""
        b, n, d = x.shape
        if queries is None:
            qkv = self.qkv(x).view(b, n, 3, self.heads, d // self.heads)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (B, h, N, d/h) each
        else:  # project queries for the kept positions only
            q = F.linear(x[:, n - queries:], self.qkv.weight[:d], self.qkv.bias[:d])
            q = q.view(b, queries, self.heads, d // self.heads).transpose(1, 2)
            kv = F.linear(x, self.qkv.weight[d:], self.qkv.bias[d:])
            kv = kv.view(b, n, 2, self.heads, d // self.heads)
            k, v = kv.permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return F.dropout(self.proj(y.transpose(1, 2).reshape(b, q.shape[2], d)), self.dropout, self.training)


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, queries: int | None = None) -> torch.Tensor:
        """Update every position, or with `queries` only the last `queries` (the others attended to only)."""
        y = self.attn(self.norm1(x), queries)
        x = (x if queries is None else x[:, x.shape[1] - queries:]) + y
        return x + self.mlp(self.norm2(x))


def image_stem(channels: int, width: int, depth: int) -> nn.Sequential:
    """3x3 convolutions over the token grid (C -> W); the last one starts at zero, adding nothing."""
    layers = []
    for i in range(depth):
        layers += [nn.Conv2d(channels if i == 0 else width, width, 3, padding=1)]
        if i < depth - 1:
            layers += [nn.GroupNorm(8, width), nn.GELU()]
    nn.init.zeros_(layers[-1].weight)
    nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


def pixel_stem(width: int, stride: int) -> nn.Sequential:
    """Patch embedding of the pixels (N, 3, H, W) -> (N, width, H / stride, W / stride).

    Per halving a stride-2 and a plain 3x3 convolution, each with GroupNorm and GELU; the widths double up to
    `width`.
    """
    levels = int(math.log2(stride))
    layers, c = [], 3
    for i in range(levels):
        out = width >> (levels - 1 - i)
        layers += [nn.Conv2d(c, out, 3, stride=2, padding=1), nn.GroupNorm(8, out), nn.GELU(),
                   nn.Conv2d(out, out, 3, padding=1), nn.GroupNorm(8, out), nn.GELU()]
        c = out
    return nn.Sequential(*layers)


class MaskedTransformer(nn.Module):
    """MAR encoder/decoder conditioned on image tokens.

    The image stream takes `token_channels` KL latent channels per token, followed by `config.pixel_stem`
    channels of the pixel stem's features (`pixel_stem`, applied by the caller: see `CamSeg.image_condition`).
    """

    def __init__(self, config: TransformerConfig, token_channels: int, grid: tuple[int, int],
                 stride: int = 8):
        super().__init__()
        self.config = config
        self.grid = tuple(grid)
        self.num_tokens = num_tokens = grid[0] * grid[1]
        w, L = config.width, num_tokens
        cond = token_channels + config.pixel_stem  # channels of the image stream
        self.pixel_stem = pixel_stem(config.pixel_stem, stride) if config.pixel_stem else None
        self.image_proj = nn.Linear(cond, w)
        self.image_stem = image_stem(cond, w, config.image_stem) if config.image_stem else None
        self.mask_proj = nn.Linear(token_channels, w)
        self.encoder_pos = nn.Parameter(torch.zeros(1, L, w))  # spatial, shared by both streams
        self.encoder_stream = nn.Parameter(torch.zeros(2, w))  # image / mask stream embedding
        self.encoder = nn.ModuleList(Block(w, config.num_heads, config.mlp_ratio, config.dropout)
                                     for _ in range(config.encoder_depth))
        self.encoder_norm = nn.LayerNorm(w)
        self.decoder_embed = nn.Linear(w, w)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, w))
        self.decoder_pos = nn.Parameter(torch.zeros(1, L, w))
        self.decoder_stream = nn.Parameter(torch.zeros(2, w))
        self.decoder = nn.ModuleList(Block(w, config.num_heads, config.mlp_ratio, config.dropout)
                                     for _ in range(config.decoder_depth))
        self.decoder_norm = nn.LayerNorm(w)
        self.output_pos = nn.Parameter(torch.zeros(1, L, w))
        # auxiliary: z -> class scores of each token (training only; see TransformerConfig.class_weight)
        self.classifier = nn.Linear(w, NUM_CLASSES) if config.class_weight > 0 else None
        for p in (self.encoder_pos, self.encoder_stream, self.decoder_pos, self.decoder_stream,
                  self.output_pos, self.mask_token):
            nn.init.trunc_normal_(p, std=0.02)
        self.apply(self._init_linear)

    @staticmethod
    def _init_linear(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, image_tokens: torch.Tensor, mask_tokens: torch.Tensor,
                masked: torch.Tensor, num_masked: int | None = None) -> torch.Tensor:
        """Compute one condition per mask token.

        image_tokens (B, L, C + pixel_stem), mask_tokens (B, L, C); masked: (B, L) bool, the same count per
        row -> z (B, L, W).
        num_masked: that count when the caller knows it (no host synchronisation to count it).
        """
        B, L = masked.shape
        n_visible = L - (int(masked[0].sum()) if num_masked is None else num_masked)
        img = self.image_proj(image_tokens) + self.encoder_pos + self.encoder_stream[0]  # (B, L, W)
        if self.image_stem is not None:
            grid = image_tokens.transpose(1, 2).reshape(B, -1, *self.grid)  # (B, C, rows, cols)
            img = img + self.image_stem(grid).flatten(2).transpose(1, 2)
        x = img
        if n_visible:
            visible_idx = torch.argsort(masked.to(torch.int8), dim=1, stable=True)[:, :n_visible]  # (B, V)
            msk = self.mask_proj(mask_tokens) + self.encoder_pos + self.encoder_stream[1]  # (B, L, W)
            msk = torch.gather(msk, 1, visible_idx[..., None].expand(-1, -1, msk.shape[-1]))  # (B, V, W)
            x = torch.cat([img, msk], dim=1)  # (B, L + V, W)
        for block in self.encoder:
            x = block(x)
        x = self.decoder_embed(self.encoder_norm(x))
        full = self.mask_token.to(x.dtype).expand(B, L, -1)  # (B, L, W)
        if n_visible:
            full = full.clone()
            full.scatter_(1, visible_idx[..., None].expand(-1, -1, x.shape[-1]), x[:, L:])
        image = x[:, :L]  # (B, L, W) encoded image tokens
        full = full + image  # each mask position sees the image token at its place
        x = torch.cat([image + self.decoder_stream[0], full + self.decoder_stream[1]], dim=1)
        x = x + self.decoder_pos.repeat(1, 2, 1)  # (B, 2L, W)
        for i, block in enumerate(self.decoder):  # the last block updates only the mask positions
            x = block(x, L if i == len(self.decoder) - 1 else None)
        return self.decoder_norm(x[:, -L:]) + self.output_pos  # (B, L, W)

    def sample_mask(self, batch: int, device: torch.device) -> torch.Tensor:
        """Draw a training mask (B, L) bool.

        The ratio ~ truncated N(1, std) on [min, 1], one ratio per batch, at random positions.
        """
        c = self.config
        lo = torch.special.ndtr(torch.tensor((c.mask_ratio_min - 1.0) / c.mask_ratio_std))
        u = lo + (0.5 - lo) * torch.rand(())  # uniform between the CDF at min and at the mean (= 1.0)
        ratio = float(1.0 + c.mask_ratio_std * torch.special.ndtri(u))
        n_masked = min(self.num_tokens, max(1, math.ceil(ratio * self.num_tokens)))
        order = torch.argsort(torch.rand(batch, self.num_tokens, device=device), dim=1)
        masked = torch.zeros(batch, self.num_tokens, dtype=torch.bool, device=device)
        masked.scatter_(1, order[:, :n_masked], True)
        return masked


def cosine_schedule(num_tokens: int, num_iter: int) -> list[int]:
    """How many tokens stay masked after each of `num_iter` steps (MAR's cosine schedule); ends at 0."""
    remaining, masked = [], num_tokens
    for step in range(num_iter):
        if step == num_iter - 1:
            left = 0
        else:
            left = math.floor(num_tokens * math.cos(math.pi / 2 * (step + 1) / num_iter))
            left = max(1, min(masked - 1, left))
        remaining.append(left)
        masked = left
    return remaining
