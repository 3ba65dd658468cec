"""Procedural street scenes seen from a car: RGB image, exact Cityscapes labelIds and metric depth.

A scene is a *layout* (a street in world coordinates) seen by a pinhole camera. World axes: X right,
Y up, Z forward along the street, in metres, origin on the road centre line. The ground, the facade
planes along both sides and the far backdrop are rendered per pixel by analytic ray-plane
intersection (vectorised NumPy); objects (vehicles, people, poles, signs, trees) are OpenCV polygon
fills drawn far to near. A drive is the same layout rendered at later times: the camera moves
forward at `layout.speed` and so does the traffic (`render_layout(layout, t)`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from camseg_core.labels import NAME_TO_LABEL_ID as LID

SHIFT = 4  # sub-pixel bits of the OpenCV drawing calls
NEAR = 1.5  # metres: objects closer than this to the camera are not drawn
MIN_PIXELS = 1.5  # objects less tall than this in the image are not drawn
GAP, BUILDING, VEGETATION, WALL, FENCE = range(5)  # facade segment kinds
KIND_LABEL = np.array([0, LID['building'], LID['vegetation'], LID['wall'], LID['fence']], np.uint8)


@dataclass
class SceneConfig:
    """How scenes are drawn; every range is sampled uniformly per scene."""

    height: int = 256  # image size in pixels
    width: int = 512
    focal: tuple[float, float] = (0.6, 0.8)  # focal length as a fraction of the image width
    camera_height: tuple[float, float] = (1.2, 1.8)  # metres above the road
    pitch_deg: tuple[float, float] = (-2.5, 2.5)  # camera pitch, positive looks down
    horizon: float = 0.45  # horizon row at zero pitch, as a fraction of the height
    street_length: float = 150.0  # metres from the camera to the backdrop closing the street
    sky_depth: float = 1000.0  # depth written for sky pixels (metres)
    density: float = 1.0  # scales the number of vehicles, people and street furniture
    noise_std: float = 3.0  # sensor noise (grey levels)

    def validate(self) -> SceneConfig:
        """Raise ValueError naming the first bad field; return self."""
        if self.height < 16 or self.width < 16:
            raise ValueError(f'scene size must be at least 16x16, got {self.height}x{self.width}')
        for name in ('focal', 'camera_height', 'pitch_deg'):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f'SceneConfig.{name}: empty range ({lo}, {hi})')
        if min(self.focal) <= 0 or min(self.camera_height) <= 0:
            raise ValueError('SceneConfig: focal and camera_height must be positive')
        if self.street_length <= 10 or self.sky_depth <= self.street_length:
            raise ValueError('SceneConfig: need street_length > 10 and sky_depth > street_length')
        if self.density < 0 or self.noise_std < 0:
            raise ValueError('SceneConfig: density and noise_std must be >= 0')
        return self


@dataclass
class Scene:
    """One rendered frame."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    label_ids: np.ndarray  # (H, W) uint8 Cityscapes labelIds
    depth: np.ndarray  # (H, W) float32 distance along each pixel's ray in metres (sky = sky_depth)
    lights: np.ndarray  # (N, 6) float32 light sources: u, v, radius (px), r, g, b (0..255)


@dataclass
class Plane:
    """A facade plane X = x along the street, cut into segments [start, end) along Z."""

    x: float
    starts: np.ndarray  # (S,) float
    ends: np.ndarray  # (S,) float
    kinds: np.ndarray  # (S,) int: GAP, BUILDING, ...
    tops: np.ndarray  # (S,) float: segment height (m)
    colours: np.ndarray  # (S, 3) float
    cells: np.ndarray  # (S,) float: window spacing along Z (m)
    shade: float  # sunlight on this side


@dataclass
class Thing:
    """One object: kind, ground position (near end), velocity along Z, size and colour."""

    kind: str
    x: float
    z: float
    vz: float = 0.0
    size: tuple = (1.0, 1.0, 1.0)  # width, height, length (m)
    colour: tuple = (128.0, 128.0, 128.0)
    extra: dict = field(default_factory=dict)


@dataclass
class Layout:
    """A street and a camera: everything random about a scene except the sensor noise."""

    config: SceneConfig
    f: float  # focal length (px)
    cx: float  # principal point column
    vh: float  # horizon row
    hc: float  # camera height (m)
    cam_x: float  # camera lateral position (m)
    speed: float  # camera speed along Z (m/s)
    road: float  # road half width (m)
    walks: tuple  # sidewalk width left, right (m)
    verge_terrain: tuple  # ground beyond the sidewalk is terrain (True) or sidewalk (False), left, right
    lane_marks: np.ndarray  # X of dashed lane lines
    crossings: np.ndarray  # Z of zebra crossings
    planes: list  # Plane, drawn in order
    backdrop: dict  # x edges, kinds, tops, colours of the street's far end
    things: list  # Thing
    sky: np.ndarray  # (2, 3) sky colour at the top and at the horizon
    exposure: np.ndarray  # (3,) global colour gain
    tex: np.ndarray  # (256, 256) float32 world-anchored texture noise in [0, 1]


def _u(rng, lo_hi):
    return float(rng.uniform(*lo_hi))


def _palette(rng, base, jitter=20.0):
    return tuple(float(c) for c in np.clip(np.asarray(base, float) + rng.uniform(-jitter, jitter, 3), 0, 255))


FACADE_COLOURS = ((190, 175, 150), (150, 140, 130), (160, 90, 70), (210, 205, 195), (120, 120, 125),
                  (200, 170, 120), (140, 150, 160))
CAR_COLOURS = ((200, 200, 205), (30, 30, 35), (120, 120, 125), (150, 20, 20), (20, 40, 110), (230, 230, 230),
               (60, 80, 60), (180, 150, 60))


def _segments(rng, z0, z1, probs, tops_by_kind, length=(8.0, 30.0)):
    """Cut [z0, z1) into random segments of random kinds; return the Plane arrays."""
    starts, ends, kinds, tops, cols, cells = [], [], [], [], [], []
    z = z0
    while z < z1:
        seg = _u(rng, length)
        kind = int(rng.choice(len(probs), p=probs))
        starts.append(z)
        ends.append(z + seg - (rng.uniform(0, 2) if kind == BUILDING else 0.0))
        kinds.append(kind)
        tops.append(_u(rng, tops_by_kind[kind]))
        base = {BUILDING: FACADE_COLOURS[rng.integers(len(FACADE_COLOURS))], VEGETATION: (70, 100, 40),
                WALL: (150, 145, 135), FENCE: (120, 110, 95)}.get(kind, (0, 0, 0))
        cols.append(_palette(rng, base))
        cells.append(_u(rng, (1.8, 3.2)))
        z += seg
    return [np.array(a, np.float64) for a in (starts, ends)] + [np.array(kinds, np.int64)] + \
        [np.array(a, np.float64) for a in (tops, cols, cells)]


def make_layout(rng, config: SceneConfig | None = None, length: float = 0.0, speed: float = 0.0) -> Layout:
    """Draw a random street; `length` extra metres (and traffic) for a drive at `speed` m/s."""
    cfg = (config or SceneConfig()).validate()
    rng = np.random.default_rng(rng)
    H, W = cfg.height, cfg.width
    f = W * _u(rng, cfg.focal)
    vh = H * cfg.horizon - f * np.tan(np.radians(_u(rng, cfg.pitch_deg)))
    road = _u(rng, (3.5, 8.0))
    walks = (_u(rng, (1.5, 4.5)), _u(rng, (1.5, 4.5)))
    n_lanes = max(1, int(round(road / 3.3)))
    lane_w = road / n_lanes
    cam_x = 0.5 * lane_w + _u(rng, (-0.3, 0.3))
    marks = np.concatenate([[0.0], lane_w * np.arange(1, n_lanes), -lane_w * np.arange(1, n_lanes)])
    z_lo, z_hi = -30.0, cfg.street_length + length + 30.0
    lay = Layout(cfg, f, W / 2 + _u(rng, (-0.02, 0.02)) * W, vh, _u(rng, cfg.camera_height), cam_x, speed,
                 road, walks, tuple(bool(rng.random() < 0.4) for _ in range(2)), marks,
                 np.sort(rng.uniform(15, z_hi, rng.poisson((z_hi - 15) / 90))), [], {}, [],
                 np.array([_palette(rng, (70, 120, 190), 25), _palette(rng, (190, 210, 230), 20)]),
                 rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3),
                 cv2.GaussianBlur(rng.random((256, 256)).astype(np.float32), (0, 0), 0.7))
    if rng.random() < 0.3:  # overcast
        lay.sky = np.array([_palette(rng, (150, 155, 165), 15), _palette(rng, (205, 210, 215), 10)])
    for side in (-1, 1):
        walk = walks[side > 0]
        setback = _u(rng, (0.2, 4.0))
        shade = _u(rng, (0.6, 1.1))
        plane_x = road + walk + 0.3 + setback
        back = _segments(rng, z_lo, z_hi, [0.2, 0.4, 0.4, 0, 0], {0: (0, 0), 1: (15, 35), 2: (8, 16)},
                         (15, 40))
        main = _segments(rng, z_lo, z_hi, [0.12, 0.63, 0.25, 0, 0], {0: (0, 0), 1: (6, 25), 2: (4, 12)})
        front = _segments(rng, z_lo, z_hi, [0.7, 0, 0, 0.15, 0.15],
                          {0: (0, 0), 3: (0.8, 2.5), 4: (1.0, 2.0)}, (5, 20))
        for x, arrays in ((plane_x + _u(rng, (6, 20)), back), (plane_x, main), (road + walk + 0.25, front)):
            lay.planes.append(Plane(side * x, *arrays, shade))
    xs = np.cumsum(rng.uniform(5, 30, 64)) - 400
    lay.backdrop = dict(edges=xs, kinds=rng.choice([BUILDING, VEGETATION], 64, p=[0.7, 0.3]),
                        tops=rng.uniform(6, 30, 64),
                        colours=np.array([_palette(rng, FACADE_COLOURS[i % 7]) for i in range(64)]))
    _add_things(lay, rng, z_lo, z_hi)
    return lay


def _add_things(lay: Layout, rng, z_lo: float, z_hi: float) -> None:
    """Populate the street with vehicles, people, poles, signs, traffic lights and trees."""
    d, road, walks, span, v = lay.config.density, lay.road, lay.walks, z_hi - z_lo, lay.speed
    T = lay.things
    n_lanes = len(lay.lane_marks) // 2 + 1
    lane_w = road / n_lanes

    def n(per_metre):
        return rng.poisson(span * per_metre * d)

    for side in (-1, 1):
        walk = walks[side > 0]
        if rng.random() < 0.8:  # street lamps
            for z in np.arange(z_lo, z_hi, _u(rng, (18, 35))):
                T.append(Thing('lamp', side * (road + 0.4), z, size=(0.15, _u(rng, (6, 9)), 0.15)))
        if rng.random() < 0.6 and abs(side * (road - 1.1) - lay.cam_x) > 2.2:  # parked cars along the kerb
            for z in np.arange(z_lo, z_hi, _u(rng, (5.5, 7.0))):
                if rng.random() < 0.6:
                    T.append(_vehicle(rng, 'car', side * (road - 1.1), z, 0.0, side))
        for _ in range(n(1 / 8)):  # pedestrians on the sidewalk
            T.append(_person(rng, side * (road + _u(rng, (0.5, walk))), _u(rng, (z_lo, z_hi)),
                             rng.choice([-1.3, 0.0, 1.3])))
        for _ in range(n(1 / 60)):
            kind = 'bicycle' if rng.random() < 0.7 else 'motorcycle'
            T.append(Thing(kind, side * (road + _u(rng, (0.4, walk))), _u(rng, (z_lo, z_hi)),
                           colour=_palette(rng, CAR_COLOURS[rng.integers(8)]),
                           extra=dict(facing=rng.choice([-1, 1]))))
        for _ in range(n(1 / 50)):
            T.append(Thing('sign', side * (road + 0.5), _u(rng, (z_lo, z_hi)),
                           size=(0.1, _u(rng, (2.2, 3.0)), 0.1),
                           extra=dict(shape=int(rng.integers(3)), diam=_u(rng, (0.5, 0.8)))))
        if lay.verge_terrain[side > 0] or rng.random() < 0.3:
            for z in np.arange(z_lo, z_hi, _u(rng, (8, 20))):
                T.append(Thing('tree', side * (road + 0.6 * walk + 0.3), z,
                               size=(_u(rng, (2, 5)), _u(rng, (4, 9)), 0),
                               colour=_palette(rng, (60, 95, 35), 15)))
    for zc in lay.crossings:
        for side in (-1, 1):
            T.append(Thing('traffic_light', side * (road + 0.3), zc - 1.0,
                           size=(0.3, _u(rng, (3.0, 4.0)), 0.3),
                           extra=dict(state=int(rng.integers(3)), arm=rng.random() < 0.4 and side > 0)))
        for _ in range(rng.poisson(2 * d)):  # people crossing
            T.append(_person(rng, _u(rng, (-road, road)), zc + _u(rng, (0, 3.5)), 0.0))
    for _ in range(n(1 / 20)):  # moving traffic: same direction on the right, oncoming on the left
        lane = int(rng.integers(-n_lanes, n_lanes))
        x = (lane + 0.5) * lane_w
        kind = rng.choice(['car', 'truck', 'bus'], p=[0.8, 0.1, 0.1])
        z = _u(rng, (z_lo, z_hi))
        ego = abs(x - lay.cam_x) < lane_w / 2
        if ego and z < 10.0:
            continue
        T.append(_vehicle(rng, str(kind), x, z, v if lane >= 0 else -v, 1 if lane >= 0 else -1))
    if rng.random() < 0.25 * min(d, 1.0):  # a tram in one of the inner lanes
        lane = int(rng.choice([-1, 0])) if n_lanes > 1 or rng.random() < 0.5 else -1
        x, z = (lane + 0.5) * lane_w, _u(rng, (15.0, z_hi))
        if abs(x - lay.cam_x) >= lane_w / 2 or z > 25.0:
            T.append(_vehicle(rng, 'train', x, z, v if lane >= 0 else -v, 1 if lane >= 0 else -1))
    for _ in range(n(1 / 70)):  # riders near the right kerb
        kind = 'rider_bicycle' if rng.random() < 0.6 else 'rider_motorcycle'
        z = _u(rng, (12.0, z_hi))
        T.append(Thing(kind, road - 0.7, z, vz=v, colour=_palette(rng, CAR_COLOURS[rng.integers(8)]),
                       extra=dict(shirt=_palette(rng, (90, 90, 110), 60))))


def _vehicle(rng, kind: str, x: float, z: float, vz: float, facing: int) -> Thing:
    size = {'car': (_u(rng, (1.7, 1.9)), _u(rng, (1.4, 1.6)), _u(rng, (4.0, 4.8))),
            'truck': (2.4, _u(rng, (3.2, 3.8)), _u(rng, (7, 10))),
            'bus': (2.5, _u(rng, (3.0, 3.3)), _u(rng, (11, 13))),
            'train': (2.65, 3.5, _u(rng, (25, 35)))}[kind]
    base = CAR_COLOURS[rng.integers(8)] if kind in ('car', 'truck') else \
        ((220, 190, 40), (200, 40, 40), (40, 90, 160), (235, 235, 230))[rng.integers(4)]
    return Thing(kind, x, z, vz, size, _palette(rng, base, 15), dict(facing=facing))


def _person(rng, x: float, z: float, vz: float) -> Thing:
    return Thing('person', x, z, vz, (0.5, _u(rng, (1.55, 1.9)), 0.3), _palette(rng, (90, 90, 110), 70),
                 dict(pants=_palette(rng, (50, 50, 70), 40), skin=_palette(rng, (190, 150, 120), 40),
                      stride=_u(rng, (-0.12, 0.12))))


class _Canvas:
    """Image, labels and camera-Z depth being drawn, plus the camera of the frame."""

    def __init__(self, lay: Layout, t: float):
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


def render_layout(lay: Layout, t: float = 0.0, rng=None) -> Scene:
    """Render a layout at time t (seconds; the camera is at Z = speed * t). `rng` draws the sensor noise."""
    cfg = lay.config
    rng = np.random.default_rng(rng)
    cv = _Canvas(lay, t)
    H, W = cfg.height, cfg.width
    u = np.arange(W, dtype=np.float32)[None, :] + 0.5
    v = np.arange(H, dtype=np.float32)[:, None] + 0.5
    _draw_sky(cv, v, H, W)
    _draw_backdrop(cv, u, v)
    _draw_ground(cv, u, v)
    for plane in lay.planes:
        _draw_plane(cv, plane, u, v)
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


def _draw_sky(cv: _Canvas, v, H, W):
    lay = cv.lay
    a = np.clip(v / max(lay.vh, 1.0), 0, 1)[..., None]  # (H, 1, 1): 0 at the top, 1 at the horizon
    grad = lay.sky[0] * (1 - a) + lay.sky[1] * a
    clouds = cv2.resize(lay.tex[:6, :12], (W, H), interpolation=cv2.INTER_CUBIC)[..., None]
    cv.img[:] = grad + 40.0 * np.clip(clouds - 0.5, 0, 1) * (1 - a)


def _draw_backdrop(cv: _Canvas, u, v):
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


def _draw_ground(cv: _Canvas, u, v):
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


def _draw_plane(cv: _Canvas, pl: Plane, u, v):
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


def _draw_vehicle(cv: _Canvas, th: Thing, zc: float):
    w, h, L = th.size
    x0, x1 = th.x - w / 2, th.x + w / 2
    lab, col = LID[th.kind], np.asarray(th.colour, np.float32)
    front = th.extra['facing'] < 0  # we see its front
    glass = np.float32([45, 55, 65])
    near_sh = cv.project([(x0 - 0.1, 0), (x1 + 0.1, 0)], zc - 0.2)
    far_sh = cv.project([(x0 - 0.1, 0), (x1 + 0.1, 0)], zc + L)
    cv.shadow(np.concatenate([near_sh, far_sh[::-1]]))
    if th.kind == 'car':
        cv.box(x0, x1, 0.2, 0.55 * h, zc, zc + L, lab, col, zc)
        cv.box(x0 + 0.1 * w, x1 - 0.1 * w, 0.55 * h, h, zc + 0.2 * L, zc + 0.75 * L, lab, glass, zc)
        cv.rect(x0 + 0.15 * w, x1 - 0.15 * w, 0.58 * h, 0.95 * h, zc + 0.2 * L, lab, col * 0.5 + glass * 0.5)
        light_y = 0.45 * h
    elif th.kind == 'truck':
        cargo = (zc, zc + L - 2.6) if not front else (zc + 2.6, zc + L)
        cab = (zc + L - 2.5, zc + L) if not front else (zc, zc + 2.5)
        cv.box(x0, x1, 0.4, h, *cargo, lab, col, zc)
        cv.box(x0 + 0.05, x1 - 0.05, 0.4, 2.9, *cab, lab, np.float32([200, 60, 40]) if front else col, zc)
        if front:
            cv.rect(x0 + 0.2, x1 - 0.2, 1.7, 2.6, zc, lab, glass)
        light_y = 0.8
    else:
        cv.box(x0, x1, 0.3, h, zc, zc + L, lab, col, zc)
        side = x1 if th.x < cv.lay.cam_x else x0
        band = np.concatenate([cv.project([(side, 1.4), (side, 2.6)], zc + 0.5),
                               cv.project([(side, 2.6), (side, 1.4)], zc + L - 0.5)])
        cv.fill(band, lab, glass, zc)
        cv.rect(x0 + 0.15, x1 - 0.15, 1.4 if front else 1.9, 2.8, zc, lab, glass)
        light_y = 0.7
    for xw in (x0, x1 - 0.25):  # tyres under the near end
        cv.rect(xw, xw + 0.25, 0.0, 0.45, zc + 0.3, lab, (20, 20, 20))
    lc = (255, 240, 200) if front else (230, 20, 20)
    for xl in (x0 + 0.1, x1 - 0.35):
        cv.rect(xl, xl + 0.25, light_y, light_y + 0.12, zc, lab, lc)
        cv.light(xl + 0.12, light_y + 0.06, zc, 0.12 if front else 0.08, lc)


def _sprite(cv: _Canvas, th: Thing, zc: float, parts):
    """Draw flat parts given in metres around the object's ground point: (kind, data, label, colour)."""
    s = cv.lay.f / zc
    (ub, vb), = cv.project([(th.x, 0.0)], zc)
    for kind, data, label, colour in parts:
        if kind == 'poly':
            pts = np.asarray(data, np.float64)
            cv.fill(np.column_stack([ub + pts[:, 0] * s, vb - pts[:, 1] * s]), label, colour, zc)
        else:  # ('circle' | 'ring' | 'line', ...)
            sh = 1 << SHIFT
            thick = max(1, int(round(data[-1] * s)))
            if kind == 'line':
                (xa, ya), (xb, yb) = data[0], data[1]
                pa = (int((ub + xa * s) * sh), int((vb - ya * s) * sh))
                pb = (int((ub + xb * s) * sh), int((vb - yb * s) * sh))
                for arr, val in ((cv.lab, label), (cv.img, colour), (cv.dep, zc)):
                    cv2.line(arr, pa, pb, _val(val), thick, cv2.LINE_8, SHIFT)
            else:
                (xc, yc), r = data[0], data[1]
                c = (int((ub + xc * s) * sh), int((vb - yc * s) * sh))
                t = -1 if kind == 'circle' else thick
                for arr, val in ((cv.lab, label), (cv.img, colour), (cv.dep, zc)):
                    cv2.circle(arr, c, max(1, int(r * s * sh)), _val(val), t, cv2.LINE_8, SHIFT)


def _val(v):
    return tuple(float(c) for c in v) if isinstance(v, (tuple, list, np.ndarray)) else float(v)


def _person_parts(th: Thing, label: int, h: float, sitting: bool = False):
    e = th.extra
    st = e.get('stride', 0.05)
    hip, sh = 0.5 * h, 0.82 * h
    legs = [] if sitting else [
        ('poly', [(-0.17 + st, 0), (-0.03 + st, 0), (-0.01, hip), (-0.16, hip)], label, e['pants']),
        ('poly', [(0.03 - st, 0), (0.17 - st, 0), (0.16, hip), (0.01, hip)], label, e['pants'])]
    return legs + [
        ('poly', [(-0.18, hip - 0.05), (0.18, hip - 0.05), (0.21, sh), (-0.21, sh)], label, th.colour),
        ('poly', [(-0.27, 0.5 * h), (-0.19, 0.5 * h), (-0.19, sh), (-0.25, sh)], label, th.colour),
        ('poly', [(0.19, 0.5 * h), (0.27, 0.5 * h), (0.25, sh), (0.19, sh)], label, th.colour),
        ('poly', [(-0.05, sh - 0.02), (0.05, sh - 0.02), (0.05, sh + 0.05), (-0.05, sh + 0.05)], label,
         e['skin']),
        ('circle', ((0, 0.91 * h), 0.075 * h, 0), label, e['skin']),
        ('poly', [(-0.075 * h, 0.92 * h), (0.075 * h, 0.92 * h), (0.06 * h, 0.98 * h), (-0.06 * h, 0.98 * h)],
         label, (40, 30, 25))]


def _draw_person(cv, th, zc):
    _sprite(cv, th, zc, _person_parts(th, LID['person'], th.size[1]))


def _draw_two_wheeler(cv, th, zc):
    k = 1 if th.extra.get('facing', 1) > 0 else -1
    if th.kind == 'bicycle':
        lab, c, r = LID['bicycle'], th.colour, 0.34
        hub_r, hub_f, bb, seat, head = (-0.52 * k, r), (0.52 * k, r), (-0.05 * k, 0.3), (-0.2 * k, 0.85), \
            (0.38 * k, 0.85)
        parts = [('ring', (hub_r, r, 0.04), lab, (25, 25, 25)), ('ring', (hub_f, r, 0.04), lab, (25, 25, 25))]
        bars = ((hub_r, bb), (bb, seat), (seat, hub_r), (seat, head), (head, bb), (head, hub_f),
                (head, (0.3 * k, 1.0)))
        parts += [('line', (a, b, 0.04), lab, c) for a, b in bars]
    else:
        lab, c = LID['motorcycle'], th.colour
        parts = [('circle', ((-0.7 * k, 0.3), 0.3, 0), lab, (25, 25, 25)),
                 ('circle', ((0.7 * k, 0.3), 0.3, 0), lab, (25, 25, 25)),
                 ('poly', [(-0.6 * k, 0.35), (0.55 * k, 0.35), (0.6 * k, 0.75), (0.2 * k, 0.9),
                           (-0.3 * k, 0.85), (-0.75 * k, 0.6)], lab, c),
                 ('line', ((0.5 * k, 0.8), (0.65 * k, 1.05), 0.05), lab, (30, 30, 30))]
    _sprite(cv, th, zc, parts)


def _draw_rider(cv, th, zc):
    moto = th.kind == 'rider_motorcycle'
    vl = LID['motorcycle' if moto else 'bicycle']
    wheel = 0.14 if moto else 0.05
    parts = [('poly', [(-wheel, 0), (wheel, 0), (wheel, 0.65), (-wheel, 0.65)], vl, (25, 25, 25))]
    if moto:
        parts += [('poly', [(-0.3, 0.35), (0.3, 0.35), (0.28, 0.9), (-0.28, 0.9)], vl, th.colour),
                  ('poly', [(-0.1, 0.6), (0.1, 0.6), (0.1, 0.7), (-0.1, 0.7)], vl, (230, 20, 20))]
    parts += [('line', ((-0.3, 1.05), (0.3, 1.05), 0.04), vl, (30, 30, 30))]
    rl = LID['rider']
    person = Thing('rider', th.x, th.z, extra=dict(pants=(40, 40, 60), skin=(190, 150, 120)),
                   colour=th.extra['shirt'])
    legs = [('poly', [(-0.18, 0.85), (-0.08, 0.85), (-0.06, 0.3), (-0.14, 0.3)], rl, (40, 40, 60)),
            ('poly', [(0.08, 0.85), (0.18, 0.85), (0.14, 0.3), (0.06, 0.3)], rl, (40, 40, 60))]
    body = [(k, [(x, y + 0.1) for x, y in d] if k == 'poly' else ((d[0][0], d[0][1] + 0.1), *d[1:]), lb, c)
            for k, d, lb, c in _person_parts(person, rl, 1.65, sitting=True)]
    _sprite(cv, th, zc, parts + legs + body)
    if moto:
        cv.light(th.x, 0.65, zc, 0.06, (230, 20, 20))


def _draw_pole(cv, th, zc, top=None):
    w = th.size[0]
    top = top or th.size[1]
    cv.box(th.x - w / 2, th.x + w / 2, 0, top, zc, zc + w, LID['pole'], (120, 120, 118), zc)


def _draw_lamp(cv, th, zc):
    _draw_pole(cv, th, zc)
    h, inward = th.size[1], -np.sign(th.x) * 1.8
    xa, xb = sorted((th.x, th.x + inward))
    cv.box(xa, xb, h - 0.12, h, zc, zc + 0.12, LID['pole'], (110, 110, 108), zc)
    cv.box(th.x + inward - 0.25, th.x + inward + 0.25, h - 0.25, h - 0.05, zc - 0.1, zc + 0.2, LID['pole'],
           (90, 90, 90), zc)
    cv.light(th.x + inward, h - 0.3, zc, 0.25, (255, 210, 150))


def _draw_traffic_light(cv, th, zc):
    h, e = th.size[1], th.extra
    if e['arm']:
        _draw_pole(cv, Thing('pole', th.x, 0, size=(0.18, 5.5, 0)), zc)
        xa = th.x - 4.0
        cv.box(xa, th.x, 5.3, 5.45, zc, zc + 0.15, LID['pole'], (120, 120, 118), zc)
        x, yb = xa + 0.5, 4.2
    else:
        _draw_pole(cv, th, zc, h)
        x, yb = th.x, h
    cv.box(x - 0.17, x + 0.17, yb, yb + 0.95, zc - 0.15, zc + 0.15, LID['traffic light'], (35, 35, 30),
           zc - 0.15)
    colours = ((255, 40, 30), (255, 190, 0), (40, 255, 120))
    for k, c in enumerate(colours):
        y = yb + 0.8 - 0.3 * k
        lit = k == (0, 1, 2)[e['state']]
        cv.rect(x - 0.09, x + 0.09, y - 0.09, y + 0.09, zc - 0.16, LID['traffic light'],
                c if lit else tuple(0.25 * np.array(c)))
        if lit:
            cv.light(x, y, zc - 0.16, 0.12, c)


def _draw_sign(cv, th, zc):
    h, e = th.size[1], th.extra
    _draw_pole(cv, th, zc, h)
    r, lab = e['diam'] / 2, LID['traffic sign']
    y = h - r
    zs = zc - 0.05
    if e['shape'] == 0:  # round, red ring
        parts = [('circle', ((0, y), r, 0), lab, (200, 30, 30)),
                 ('circle', ((0, y), 0.75 * r, 0), lab, (235, 235, 235))]
    elif e['shape'] == 1:  # triangle
        parts = [('poly', [(-r, y - 0.8 * r), (r, y - 0.8 * r), (0, y + r)], lab, (200, 30, 30)),
                 ('poly', [(-0.7 * r, y - 0.6 * r), (0.7 * r, y - 0.6 * r), (0, y + 0.6 * r)], lab,
                  (235, 235, 235))]
    else:  # blue square
        parts = [('poly', [(-r, y - r), (r, y - r), (r, y + r), (-r, y + r)], lab, (30, 70, 170))]
    _sprite(cv, th, zs, parts)


def _draw_tree(cv, th, zc):
    crown, h = th.size[0], th.size[1]
    lab, c = LID['vegetation'], np.asarray(th.colour, np.float32)
    base = h - crown * 0.5
    parts = [('poly', [(-0.12, 0), (0.12, 0), (0.09, base), (-0.09, base)], lab, (80, 60, 40))]
    blobs = ((0, 0, 0.5), (-0.3, -0.15, 0.35), (0.3, -0.1, 0.38), (0.1, 0.25, 0.33))
    for k, (dx, dy, rr) in enumerate(blobs):
        parts.append(('circle', ((dx * crown, base + dy * crown), rr * crown, 0), lab, c * (0.8 + 0.1 * k)))
    _sprite(cv, th, zc, parts)


DRAW = {'car': _draw_vehicle, 'truck': _draw_vehicle, 'bus': _draw_vehicle, 'train': _draw_vehicle,
        'person': _draw_person,
        'bicycle': _draw_two_wheeler, 'motorcycle': _draw_two_wheeler, 'rider_bicycle': _draw_rider,
        'rider_motorcycle': _draw_rider, 'lamp': _draw_lamp, 'traffic_light': _draw_traffic_light,
        'sign': _draw_sign, 'tree': _draw_tree}
