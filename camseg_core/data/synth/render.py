"""Render a layout at a time: background, objects far to near, exposure and sensor noise."""
from __future__ import annotations

import cv2
import numpy as np

from camseg_core.labels import NAME_TO_LABEL_ID as LID

from .canvas import NEAR, Canvas, draw_backdrop, draw_ground, draw_plane, draw_sky
from .draw import DRAW
from .layout import Layout, Scene, SceneConfig, Thing, make_layout

MIN_PIXELS = 1.5  # objects less tall than this in the image are not drawn


def render_layout(lay: Layout, t: float = 0.0, rng=None) -> Scene:
    """Render a layout at time t (seconds; the camera is at Z = speed * t). `rng` draws the sensor noise."""
    cfg = lay.config
    rng = np.random.default_rng(rng)
    cv = Canvas(lay, t)
    H, W = cfg.height, cfg.width
    u = np.arange(W, dtype=np.float32)[None, :] + 0.5
    v = np.arange(H, dtype=np.float32)[:, None] + 0.5
    draw_sky(cv, v, H, W)
    draw_backdrop(cv, u, v)
    draw_ground(cv, u, v)
    for plane in lay.planes:
        draw_plane(cv, plane, u, v)
    things = [(th.z + th.vz * t - cv.cam_z, th) for th in lay.things]
    for zc, th in sorted(((zc, th) for zc, th in things if _visible(lay, th, zc)), key=lambda p: -p[0]):
        DRAW[th.kind](cv, th, zc)
    sky = cv.lab == LID['sky']
    ray = np.sqrt(1.0 + ((u - lay.cx) / lay.f) ** 2 + ((v - lay.vh) / lay.f) ** 2)
    depth = np.where(sky, cfg.sky_depth, cv.dep * ray).astype(np.float32)
    low = cv2.resize(rng.random((4, 8)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    img = cv.img * lay.exposure * (0.92 + 0.16 * low[..., None])
    img += cfg.noise_std * rng.standard_normal(img.shape, dtype=np.float32)
    return Scene(np.clip(img, 0, 255).round().astype(np.uint8), cv.lab, depth, cv.visible_lights())


def _visible(lay: Layout, th: Thing, zc: float) -> bool:
    """Whether an object at camera depth zc is in front, at least MIN_PIXELS tall and near the view."""
    if not NEAR < zc < lay.config.street_length:
        return False
    s = lay.f / zc  # pixels per metre
    u = lay.cx + (th.x - lay.cam_x) * s
    reach = (max(th.size) + 5.0) * s  # lamp and traffic light arms reach up to 4 m sideways
    return s * th.size[1] >= MIN_PIXELS and -reach < u < lay.config.width + reach


def render_scene(rng=None, config: SceneConfig | None = None) -> Scene:
    """Render one random street scene; `rng` is a seed or numpy Generator (same seed, same scene)."""
    rng = np.random.default_rng(rng)
    return render_layout(make_layout(rng, config), 0.0, rng)
