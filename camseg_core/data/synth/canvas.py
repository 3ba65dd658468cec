"""The canvas a frame is drawn on, and the per-pixel background: sky, backdrop, ground and facades.

The ground, the facade planes along both sides and the far backdrop are rendered per pixel by analytic
ray-plane intersection (vectorised NumPy); `Canvas` also holds the OpenCV polygon fills objects use.
"""
from __future__ import annotations

import cv2
import numpy as np

from camseg_core.labels import NAME_TO_LABEL_ID as LID

from .layout import BUILDING, FENCE, GAP, VEGETATION, Layout, Plane

SHIFT = 4  # sub-pixel bits of the OpenCV drawing calls
NEAR = 1.5  # metres: objects closer than this to the camera are not drawn
KIND_LABEL = np.array([0, LID['building'], LID['vegetation'], LID['wall'], LID['fence']], np.uint8)


class Canvas:
    """Image, labels and camera-Z depth being drawn, plus the camera of the frame."""

    def __init__(self, lay: Layout, t: float):
        """Start an empty frame of `lay` at time `t` (sky labels, infinite depth)."""
        H, W = lay.config.height, lay.config.width
        self.lay, self.t, self.cam_z = lay, t, lay.speed * t
        self.img = np.zeros((H, W, 3), np.float32)
        self.lab = np.full((H, W), LID['sky'], np.uint8)
        self.dep = np.full((H, W), np.inf, np.float32)
        self.lights: list[tuple] = []

    def project(self, pts, zc):
        """World (X, Y) points at camera depth zc -> pixel coordinates (k, 2)."""
        lay = self.lay
        out = np.array(pts, np.float64).reshape(-1, 2)
        out[:, 0] = lay.cx + lay.f * (out[:, 0] - lay.cam_x) / zc
        out[:, 1] = lay.vh + lay.f * (lay.hc - out[:, 1]) / zc
        return out

    def fill(self, px, label, colour, zc):
        """Fill a pixel polygon (k, 2) with a label, a colour and a depth."""
        p = [np.round(np.asarray(px) * (1 << SHIFT)).astype(np.int32).reshape(-1, 1, 2)]
        cv2.fillPoly(self.lab, p, int(label), cv2.LINE_8, SHIFT)
        cv2.fillPoly(self.img, p, tuple(float(c) for c in colour), cv2.LINE_8, SHIFT)
        cv2.fillPoly(self.dep, p, float(zc), cv2.LINE_8, SHIFT)

    def box(self, x0, x1, y0, y1, z0, z1, label, colour, zc_ref):
        """Fill a 3D box given by world X, Y and camera Z ranges as its convex hull with shaded faces."""
        z0 = max(z0, NEAR * 0.5)
        z1 = max(z1, z0 + 0.01)
        corners = np.array([(x, y) for x in (x0, x1) for y in (y0, y1)], np.float64)
        near, far = self.project(corners, z0), self.project(corners, z1)
        hull = cv2.convexHull(np.concatenate([near, far]).astype(np.float32))[:, 0]
        colour = np.asarray(colour, np.float32)
        self.fill(hull, label, colour * 0.75, zc_ref)
        if self.lay.hc > y1:  # roof visible
            top = np.array([near[1], near[3], far[3], far[1]])
            self.fill(top, label, np.minimum(colour * 1.15, 255), zc_ref)
        self.fill(near[[0, 1, 3, 2]], label, colour, zc_ref)

    def shadow(self, px, factor=0.55):
        """Darken the image (not the labels) inside a pixel polygon."""
        H, W = self.lab.shape
        x0, y0 = np.clip(np.floor(px.min(0)).astype(int), 0, (W, H))
        x1, y1 = np.clip(np.ceil(px.max(0)).astype(int) + 1, 0, (W, H))
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        pts = np.round((px - (x0, y0)) * (1 << SHIFT)).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, SHIFT)
        self.img[y0:y1, x0:x1][mask > 0] *= factor

    def rect(self, x0, x1, y0, y1, zc, label, colour):
        """Fill an upright rectangle facing the camera at depth zc."""
        p = self.project([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], zc)
        self.fill(p, label, colour, zc)

    def light(self, x, y, zc, radius_m, colour):
        """Record a light source (its colour is drawn by the caller) for night rendering."""
        (u, v), = self.project([(x, y)], zc)
        r = max(0.7, self.lay.f * radius_m / zc)
        self.lights.append((u, v, r, *colour, zc))

    def visible_lights(self) -> np.ndarray:
        """(N, 6) lights whose centre is in the image and not hidden behind something drawn later."""
        H, W = self.lab.shape
        keep = [lt[:6] for lt in self.lights
                if 0 <= lt[0] < W and 0 <= lt[1] < H and self.dep[int(lt[1]), int(lt[0])] >= lt[6] - 0.5]
        return np.array(keep, np.float32).reshape(-1, 6)


def draw_sky(cv: Canvas, v, H, W):
    """Fill the whole image with the sky gradient and clouds (labels start as sky)."""
    lay = cv.lay
    a = np.clip(v / max(lay.vh, 1.0), 0, 1)[..., None]  # (H, 1, 1): 0 at the top, 1 at the horizon
    grad = lay.sky[0] * (1 - a) + lay.sky[1] * a
    clouds = cv2.resize(lay.tex[:6, :12], (W, H), interpolation=cv2.INTER_CUBIC)[..., None]
    cv.img[:] = grad + 40.0 * np.clip(clouds - 0.5, 0, 1) * (1 - a)


def draw_backdrop(cv: Canvas, u, v):
    """Close the street at `street_length` with a row of buildings and trees."""
    lay, bd = cv.lay, cv.lay.backdrop
    D = lay.config.street_length
    X = lay.cam_x + (u - lay.cx) * D / lay.f  # (1, W)
    Y = lay.hc - (v - lay.vh) * D / lay.f  # (H, 1)
    i = np.clip(np.searchsorted(bd['edges'], X[0]), 0, len(bd['edges']) - 1)
    veg = bd['kinds'][i] == VEGETATION
    crowns = bd['tops'][i] * 0.5 + 2.0 * np.sin(X[0] * 1.7) + 1.0 * np.sin(X[0] * 4.1)
    top = np.where(veg, crowns, bd['tops'][i])
    m = Y < np.maximum(top, lay.hc + 2.0)[None, :]  # always closes the street above the horizon
    lab = np.where(veg, LID['vegetation'], LID['building']).astype(np.uint8)
    col = np.where(veg[:, None], np.array([75, 100, 50], np.float32), bd['colours'][i]) * 0.85
    cv.lab[m] = np.broadcast_to(lab[None, :], m.shape)[m]
    cv.img[m] = np.broadcast_to(col[None], m.shape + (3,))[m]
    cv.dep[m] = D


def draw_ground(cv: Canvas, u, v):
    """Draw road, sidewalks, terrain, kerbs and road paint below the horizon, per pixel."""
    lay = cv.lay
    below = (v > lay.vh + 0.5)[:, 0]
    vv = v[below]  # (h, 1)
    zc = lay.f * lay.hc / (vv - lay.vh)  # (h, 1) camera depth of each ground row
    zc = np.broadcast_to(zc, (len(vv), u.shape[1]))
    keep = zc < lay.config.street_length
    zc = np.minimum(zc, lay.config.street_length)
    X = lay.cam_x + (u - lay.cx) * zc / lay.f
    Z = zc + cv.cam_z
    ax = np.abs(X)
    walk = np.where(X < 0, lay.walks[0], lay.walks[1])
    terr = np.where(X < 0, lay.verge_terrain[0], lay.verge_terrain[1])
    road, side = ax <= lay.road, ax <= lay.road + walk
    lab = np.where(road, LID['road'], np.where(side | ~terr, LID['sidewalk'], LID['terrain']))
    lab = lab.astype(np.uint8)
    fine = lay.tex[(X * 12).astype(np.int64) & 255, (Z * 12).astype(np.int64) & 255]
    coarse = lay.tex[(X * 0.7).astype(np.int64) & 255, (Z * 0.3).astype(np.int64) & 255]
    shade = (0.85 + 0.2 * fine + 0.15 * coarse)[..., None]
    col = np.where(road[..., None], np.float32([95, 95, 100]),
                   np.where(lab[..., None] == LID['terrain'], np.float32([95, 125, 55]),
                            np.float32([165, 155, 150])))
    tiles = ~road & (lab == LID['sidewalk']) & ((np.abs(X * 2.5 % 1) < 0.06) | (np.abs(Z * 2.5 % 1) < 0.06))
    kerb = (ax > lay.road) & (ax < lay.road + 0.2)
    col = np.where((tiles | kerb)[..., None], col * 0.8 + 30, col) * shade
    dash = (Z % 9.0) < 3.0
    paint = np.zeros_like(road)
    for i, xm in enumerate(lay.lane_marks):
        paint |= (np.abs(X - xm) < 0.08) & (dash | (i == 0 and len(lay.lane_marks) > 1))
    paint |= (np.abs(ax - (lay.road - 0.3)) < 0.08)
    for zc0 in lay.crossings:
        paint |= (Z > zc0) & (Z < zc0 + 4.0) & ((X % 1.0) < 0.5)
    col = np.where((paint & road)[..., None], np.float32([215, 215, 210]) * shade, col)
    rows = np.nonzero(below)[0]
    for arr, val in ((cv.lab, lab), (cv.img, col), (cv.dep, zc)):
        sub = arr[rows]
        sub[keep] = val[keep]
        arr[rows] = sub


def draw_plane(cv: Canvas, pl: Plane, u, v):
    """Draw one facade plane (buildings, vegetation, walls, fences) by ray-plane intersection."""
    lay = cv.lay
    xr = pl.x - lay.cam_x
    du = (u - lay.cx)[0]  # (W,)
    cols = np.nonzero(du * xr > 0)[0]
    zc = lay.f * xr / du[cols]  # (w,) camera depth of the plane in each column
    Z = zc + cv.cam_z
    i = np.clip(np.searchsorted(pl.starts, Z, 'right') - 1, 0, len(pl.starts) - 1)
    inside = (Z >= pl.starts[i]) & (Z < pl.ends[i]) & (pl.kinds[i] != GAP) & (zc > 0.3) & \
        (zc < lay.config.street_length)
    cols, zc, Z, i = cols[inside], zc[inside], Z[inside], i[inside]
    if not len(cols):
        return
    kind = pl.kinds[i]
    veg = kind == VEGETATION
    top = np.where(veg, pl.tops[i] + 0.8 * np.sin(Z * 1.3 + i) + 0.5 * np.sin(Z * 3.7), pl.tops[i])
    r0 = max(0, int(np.floor((lay.vh + lay.f * (lay.hc - top) / zc).min())))
    r1 = min(len(v), int(np.ceil((lay.vh + lay.f * lay.hc / zc).max())) + 1)
    if r1 <= r0:
        return
    Y = lay.hc - (v[r0:r1] - lay.vh) * zc / lay.f  # (h, w) height above the ground
    m = (Y >= 0) & (Y < top)
    zz = np.broadcast_to(Z, m.shape)
    t = lay.tex[(zz * 4).astype(np.int64) & 255, (Y * 4).astype(np.int64) & 255]
    wz, wy = (zz / pl.cells[i]) % 1, (Y / 3.2) % 1
    win = (kind == BUILDING) & (wz > 0.25) & (wz < 0.75) & (wy > 0.35) & (wy < 0.8) & (Y > 3.0) & \
        (Y < top - 1.0)
    fence = (kind == FENCE) & ((zz * 5) % 1 < 0.4)
    shade = np.where(veg, 0.6 + 0.8 * t, 0.8 + 0.35 * t) * np.where(fence, 0.6, 1.0) * pl.shade
    col = pl.colours[i] * shade[..., None]  # (h, w, 3)
    col = np.where(win[..., None], col * 0.35 + np.float32([30, 40, 55]), col)
    block = (slice(r0, r1), cols)
    cv.lab[block] = np.where(m, KIND_LABEL[kind], cv.lab[block])
    cv.img[block] = np.where(m[..., None], col, cv.img[block])
    cv.dep[block] = np.where(m, zc, cv.dep[block])
