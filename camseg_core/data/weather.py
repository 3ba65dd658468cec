"""Adverse-weather renderers for synthetic scenes: fog (Koschmieder's law), snow, rain and night.

Each renderer takes a `Scene` (image, labels, depth, light sources) and a numpy Generator and
returns a new RGB uint8 image; labels never change. Condition names (also the ACDC folder names
written by `camseg-synth`):

- 'clear'          the scene as rendered
- 'fog'            fog with beta = 0.01 /m (visibility about 300 m)
- 'fog_beta<B>'    fog with beta = B, e.g. 'fog_beta0.005' and 'fog_beta0.02'
- 'snow', 'rain', 'night'
"""
from __future__ import annotations

import cv2
import numpy as np

from camseg_core.data.synth import Scene
from camseg_core.labels import NAME_TO_LABEL_ID as LID

FOG_BETAS = (0.005, 0.01, 0.02)  # attenuation coefficients (1/m) written by camseg-synth
DEFAULT_FOG_BETA = 0.01
CONDITIONS = ('clear', 'fog', 'fog_beta0.005', 'fog_beta0.02', 'snow', 'rain', 'night')
GROUND = np.isin(np.arange(256), [LID['road'], LID['sidewalk'], LID['terrain']])  # (256,) bool lookup


def fog_condition_name(beta: float) -> str:
    """ACDC folder name of fog with attenuation `beta`: 'fog' for the default, else 'fog_beta<beta>'."""
    return 'fog' if beta == DEFAULT_FOG_BETA else f'fog_beta{beta:g}'


def parse_condition(name: str) -> tuple[str, float | None]:
    """Split a condition name into (kind, fog beta or None); ValueError for unknown names."""
    if name in ('clear', 'snow', 'rain', 'night'):
        return name, None
    if name == 'fog':
        return 'fog', DEFAULT_FOG_BETA
    if name.startswith('fog_beta'):
        try:
            beta = float(name[len('fog_beta'):])
        except ValueError:
            beta = -1.0
        if beta > 0:
            return 'fog', beta
    raise ValueError(f'unknown condition {name!r}; expected one of clear, fog, '
                     'fog_beta<B> (e.g. fog_beta0.02), snow, rain, night')


def fog(image: np.ndarray, depth: np.ndarray, beta: float, airlight: float = 220.0) -> np.ndarray:
    """Koschmieder's law: I = R * t + L * (1 - t) with t = exp(-beta * depth) (depth in metres)."""
    t = np.exp(-beta * depth.astype(np.float32))[..., None]  # (H, W, 1) transmittance
    out = image.astype(np.float32) * t + np.float32(airlight) * (1.0 - t)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _noise(rng, shape, cells):
    """Smooth noise in [0, 1] of `shape` (H, W) from a coarse random grid."""
    H, W = shape
    grid = rng.random((max(2, cells), max(2, 2 * cells))).astype(np.float32)
    return cv2.resize(grid, (W, H), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _particles(rng, shape, density, sigma, kernel=None):
    """Sparse random dots, optionally smeared by `kernel`, blurred; (H, W) float32 roughly in [0, 1]."""
    layer = (rng.random(shape, dtype=np.float32) < density).astype(np.float32)
    if kernel is not None:
        layer = cv2.filter2D(layer, -1, kernel)
    if sigma > 0:
        layer = cv2.GaussianBlur(layer, (0, 0), sigma) * (2 * np.pi * sigma ** 2) ** 0.5
    return layer.clip(0, 1)


def snow(scene: Scene, rng) -> np.ndarray:
    """Overcast, low contrast, snow-covered ground and falling flakes of two sizes."""
    img = scene.image.astype(np.float32)
    H, W = img.shape[:2]
    img = img * 0.7 + 0.3 * img.mean() * np.float32([0.97, 1.0, 1.05])
    leaves = (scene.label_ids == LID['vegetation']) & (_noise(rng, (H, W), 64) > 0.55)
    cover = GROUND[scene.label_ids] | leaves
    amount = (0.45 + 0.5 * _noise(rng, (H, W), 8)) * np.where(scene.label_ids == LID['road'], 0.6, 1.0)
    img = np.where(cover[..., None], img * (1 - amount[..., None]) + 235 * amount[..., None], img)
    img = fog(img.clip(0, 255).astype(np.uint8), scene.depth, rng.uniform(0.006, 0.012), 215)
    img = img.astype(np.float32)
    s = H / 256
    flakes = _particles(rng, (H, W), 0.004, 0.6 * s) + _particles(rng, (H, W), 0.0004, 1.8 * s)
    img = img * (1 - flakes[..., None]) + 245 * flakes[..., None]
    return img.clip(0, 255).round().astype(np.uint8)


def rain(scene: Scene, rng) -> np.ndarray:
    """Darker, desaturated, hazy light; wet reflective ground and slanted rain streaks."""
    img = scene.image.astype(np.float32)
    H, W = img.shape[:2]
    grey = img.mean(-1, keepdims=True)
    img = (0.6 * img + 0.4 * grey) * rng.uniform(0.55, 0.75) * np.float32([0.95, 1.0, 1.08])
    horizon = int(np.argmax((scene.label_ids != LID['sky']).any(1)))
    rows = np.clip(2 * horizon + H // 3 - np.arange(H), 0, H - 1)  # mirror about a row below the horizon
    mirror = cv2.GaussianBlur(img[rows], (0, 0), sigmaX=1.0, sigmaY=4.0 * H / 256)
    wet = GROUND[scene.label_ids][..., None] * (0.25 + 0.2 * _noise(rng, (H, W), 6)[..., None])
    img = img * (1 - wet) + mirror * wet
    img = fog(img.clip(0, 255).astype(np.uint8), scene.depth, rng.uniform(0.003, 0.006), 150)
    img = img.astype(np.float32)
    length = max(3, int(H * rng.uniform(0.05, 0.09)))
    kernel = np.zeros((length, length), np.float32)
    slant = rng.uniform(-0.3, 0.3)
    half = length / 2
    cv2.line(kernel, (int(half - slant * half), 0), (int(half + slant * half), length - 1), 1.0)
    streaks = _particles(rng, (H, W), 0.003, 0.0, kernel) * rng.uniform(0.25, 0.45)
    img = img * (1 - streaks[..., None]) + 200 * streaks[..., None]
    return img.clip(0, 255).round().astype(np.uint8)


def night(scene: Scene, rng) -> np.ndarray:
    """Low light with a dark sky, ego headlights, glowing lamps and lights, and sensor noise."""
    img = (scene.image.astype(np.float32) / 255) ** 2.2  # linear light
    H, W = img.shape[:2]
    sky = scene.label_ids == LID['sky']
    lum = rng.uniform(0.03, 0.07)
    u = np.linspace(-1, 1, W, dtype=np.float32)[None, :]
    beam = 0.6 * np.exp(-scene.depth / 15.0) * np.exp(-(u / 0.5) ** 2)  # ego headlights
    light = lum + beam * ~sky
    img = img * light[..., None] * np.float32([0.9, 0.95, 1.1])
    img[sky] = np.float32([0.004, 0.006, 0.015]) + 0.01 * _noise(rng, (H, W), 4)[sky][:, None]
    glow = np.zeros((H, W, 3), np.float32)
    for u0, v0, r, *c in scene.lights:
        cv2.circle(glow, (int(u0), int(v0)), max(1, int(round(r))), tuple(float(x) / 255 for x in c), -1)
    halo = cv2.GaussianBlur(glow, (0, 0), max(1.0, H / 100))
    img = img + 1.5 * glow + 4.0 * halo
    out = np.clip(img, 0, 1) ** (1 / 2.2) * 255
    out += rng.normal(0, rng.uniform(3, 6), out.shape).astype(np.float32)
    return out.clip(0, 255).round().astype(np.uint8)


def apply_weather(scene: Scene, condition: str, rng=None) -> np.ndarray:
    """Render `scene` under a condition name (see module doc); deterministic for a seeded rng."""
    kind, beta = parse_condition(condition)
    rng = np.random.default_rng(rng)
    if kind == 'clear':
        return scene.image.copy()
    if kind == 'fog':
        return fog(scene.image, scene.depth, beta, rng.uniform(200, 235))
    return {'snow': snow, 'rain': rain, 'night': night}[kind](scene, rng)
