"""Scene layouts: a random street in world coordinates, its camera, and the objects along it.

World axes: X right, Y up, Z forward along the street, in metres, origin on the road centre line.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

GAP, BUILDING, VEGETATION, WALL, FENCE = range(5)  # facade segment kinds


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
