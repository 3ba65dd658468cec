"""Cityscapes classes, the colour palette, and the mask <-> colour image ("maskige") codec.

Defined once: every other module takes class names, colours and the labelId -> trainId map
from here.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

IGNORE_INDEX = 255  # trainId of pixels that are not evaluated (drawn black in a maskige)


@dataclass(frozen=True)
class Label:
    """One Cityscapes label (see cityscapesScripts' labels.py for the official table)."""

    name: str
    label_id: int
    train_id: int  # 0..18 for the 19 training classes, IGNORE_INDEX otherwise
    color: tuple[int, int, int]


# The official Cityscapes table: name | labelId | trainId ('-': not evaluated) | colour (R G B).
_TABLE = """
unlabeled            |  0 |  - |   0   0   0
ego vehicle          |  1 |  - |   0   0   0
rectification border |  2 |  - |   0   0   0
out of roi           |  3 |  - |   0   0   0
static               |  4 |  - |   0   0   0
dynamic              |  5 |  - | 111  74   0
ground               |  6 |  - |  81   0  81
road                 |  7 |  0 | 128  64 128
sidewalk             |  8 |  1 | 244  35 232
parking              |  9 |  - | 250 170 160
rail track           | 10 |  - | 230 150 140
building             | 11 |  2 |  70  70  70
wall                 | 12 |  3 | 102 102 156
fence                | 13 |  4 | 190 153 153
guard rail           | 14 |  - | 180 165 180
bridge               | 15 |  - | 150 100 100
tunnel               | 16 |  - | 150 120  90
pole                 | 17 |  5 | 153 153 153
polegroup            | 18 |  - | 153 153 153
traffic light        | 19 |  6 | 250 170  30
traffic sign         | 20 |  7 | 220 220   0
vegetation           | 21 |  8 | 107 142  35
terrain              | 22 |  9 | 152 251 152
sky                  | 23 | 10 |  70 130 180
person               | 24 | 11 | 220  20  60
rider                | 25 | 12 | 255   0   0
car                  | 26 | 13 |   0   0 142
truck                | 27 | 14 |   0   0  70
bus                  | 28 | 15 |   0  60 100
caravan              | 29 |  - |   0   0  90
trailer              | 30 |  - |   0   0 110
train                | 31 | 16 |   0  80 100
motorcycle           | 32 | 17 |   0   0 230
bicycle              | 33 | 18 | 119  11  32
license plate        | -1 |  - |   0   0 142
"""


def _parse_table(text: str) -> tuple[Label, ...]:
    labels = []
    for line in text.strip().splitlines():
        name, label_id, train_id, color = (part.strip() for part in line.split('|'))
        labels.append(Label(name, int(label_id), IGNORE_INDEX if train_id == '-' else int(train_id),
                            tuple(int(c) for c in color.split())))
    return tuple(labels)


LABELS: tuple[Label, ...] = _parse_table(_TABLE)

TRAIN_LABELS: tuple[Label, ...] = tuple(sorted((lb for lb in LABELS if lb.train_id != IGNORE_INDEX),
                                               key=lambda lb: lb.train_id))
NUM_CLASSES = len(TRAIN_LABELS)  # 19
CLASS_NAMES: tuple[str, ...] = tuple(lb.name for lb in TRAIN_LABELS)
NAME_TO_LABEL_ID: dict[str, int] = {lb.name: lb.label_id for lb in LABELS if lb.label_id >= 0}

# (NUM_CLASSES, 3) uint8: colour of each trainId.
PALETTE = np.array([lb.color for lb in TRAIN_LABELS], dtype=np.uint8)
IGNORE_COLOR = (0, 0, 0)

# (256,) uint8 lookup: Cityscapes labelId -> trainId (everything not listed -> IGNORE_INDEX).
LABEL_ID_TO_TRAIN_ID = np.full(256, IGNORE_INDEX, dtype=np.uint8)
for _lb in LABELS:
    if _lb.label_id >= 0:
        LABEL_ID_TO_TRAIN_ID[_lb.label_id] = _lb.train_id

# (256, 3) uint8 lookup: trainId -> colour (IGNORE_INDEX and unused ids -> black).
_COLOR_LUT = np.zeros((256, 3), dtype=np.uint8)
_COLOR_LUT[:NUM_CLASSES] = PALETTE


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a Cityscapes labelId image (uint8) to trainIds (uint8, IGNORE_INDEX for void)."""
    return LABEL_ID_TO_TRAIN_ID[np.asarray(label_ids, dtype=np.uint8)]


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """Draw a trainId map (H, W) as an RGB uint8 image (H, W, 3); ignore and unknown ids are black."""
    return _COLOR_LUT[np.asarray(train_ids, dtype=np.uint8)]


def labels_as_dicts() -> list[dict]:
    """Return the class table as plain data (id, name, colour), e.g. for JSON."""
    return [{'id': lb.train_id, 'name': lb.name, 'color': list(lb.color)} for lb in TRAIN_LABELS]


def encode_maskige(train_ids: torch.Tensor) -> torch.Tensor:
    """Turn a trainId map into a colour image scaled to [-1, 1].

    train_ids: (N, H, W) integer tensor. Returns (N, 3, H, W) float on the same device.
    """
    lut = _on_device('lut', train_ids.device)
    rgb = lut[train_ids.long()]  # (N, H, W, 3)
    return rgb.permute(0, 3, 1, 2) / 127.5 - 1.0


# The colours a maskige decoder chooses from: the NUM_CLASSES class colours, then black for void (ignore).
VOID_SLOT = NUM_CLASSES  # index of the void colour among the decoding colours
_DECODE_COLORS = np.vstack([PALETTE, np.array([IGNORE_COLOR], dtype=np.uint8)])  # (NUM_CLASSES + 1, 3)


@functools.lru_cache(maxsize=None)
def _on_device(table: str, device: torch.device) -> torch.Tensor:
    """Return a colour table ('lut': trainId -> colour, 'decode': decoding colours) as float32 on `device`.

    Copied once per device: a copy from host memory in every training step would make the host wait.
    Callers must not modify it.
    """
    table = _COLOR_LUT if table == 'lut' else _DECODE_COLORS
    return torch.as_tensor(table, dtype=torch.float32, device=device)


# Spread of a decoded colour around its palette colour, in 0..255 units: the scale of the class logits
# (bus and train, the closest pair of class colours, lie 20 apart).
COLOR_SIGMA = 10.0


def maskige_logits(images: torch.Tensor, sigma: float = COLOR_SIGMA) -> torch.Tensor:
    """Class scores of a colour image: -|rgb - colour_k|^2 / (2 sigma^2) for every decoding colour.

    images: (N, 3, H, W) in [-1, 1] (not clamped, so training gets gradients everywhere).
    Returns (N, NUM_CLASSES + 1, H, W) float32 logits; the last slot is void (black). The squared distances
    are one matmul: |x|^2 - 2 x.c + |c|^2.
    """
    colors = _on_device('decode', images.device) / 127.5 - 1.0  # (K+1, 3)
    x = images.float()
    dot = torch.einsum('nchw,kc->nkhw', x, colors)  # (N, K+1, H, W)
    d2 = (x * x).sum(1, keepdim=True) - 2 * dot + (colors * colors).sum(1)[None, :, None, None]
    scale = 2 * (sigma / 127.5) ** 2
    return -d2.clamp_min(0) / scale


def class_targets(train_ids: torch.Tensor) -> torch.Tensor:
    """Map trainIds (N, H, W) to decoding-colour indices (N, H, W) long: IGNORE_INDEX becomes VOID_SLOT."""
    ids = train_ids.long()
    return torch.where(ids == IGNORE_INDEX, torch.full_like(ids, VOID_SLOT), ids)


def slots_to_train_ids(slots: torch.Tensor) -> torch.Tensor:
    """Map decoding-colour indices to trainIds uint8, VOID_SLOT to IGNORE_INDEX (undoes `class_targets`)."""
    return torch.where(slots == VOID_SLOT, torch.full_like(slots, IGNORE_INDEX), slots).to(torch.uint8)


def decode_maskige(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Map a colour image in [-1, 1] back to (trainIds, confidence) by the nearest decoding colour.

    images: (N, 3, H, W) float. Returns trainIds (N, H, W) uint8, IGNORE_INDEX where black (void) is nearest,
    and confidence (N, H, W) float32 in [0, 1]: 1 - d1 / d2, with d1 and d2 the distances to the nearest and
    second-nearest decoding colour (1 on an exact palette colour, 0 half-way between two colours).
    """
    d2 = -maskige_logits(images.clamp(-1, 1))  # (N, K+1, H, W), a positive multiple of squared distance
    # the matmul form leaves float32 rounding of about 1e-4 on an exact colour; 0.005 is one colour unit
    d2 = (d2 - 1e-3).clamp_min(0)
    best2 = torch.topk(d2, k=2, dim=1, largest=False)
    dist = best2.values.sqrt()  # (N, 2, H, W)
    slot = best2.indices[:, 0]
    ids = slots_to_train_ids(slot)
    conf = 1.0 - dist[:, 0] / dist[:, 1].clamp_min(1e-6)
    return ids, conf.clamp(0.0, 1.0).to(torch.float32)


def token_class_mix(train_ids: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Each token's class mix: trainIds (B, H, W) -> (B, rows * cols, NUM_CLASSES) fractions.

    A token covers an (H / rows) x (W / cols) patch; each row is the share of every class among the patch's
    labelled pixels (it sums to 1), or all zeros where the patch has no labelled pixel.
    """
    b, h, w = train_ids.shape
    onehot = torch.nn.functional.one_hot(train_ids.long().clamp_max(NUM_CLASSES), NUM_CLASSES + 1)
    counts = torch.nn.functional.avg_pool2d(onehot[..., :NUM_CLASSES].permute(0, 3, 1, 2).float(),
                                            (h // grid[0], w // grid[1]))  # (B, K, rows, cols)
    counts = counts.flatten(2).transpose(1, 2)  # (B, L, K)
    return counts / counts.sum(-1, keepdim=True).clamp_min(1e-12)
