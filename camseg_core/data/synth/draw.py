"""Objects drawn as flat sprites and shaded boxes: vehicles, people, two-wheelers, poles, signs, trees.

`DRAW` maps a `Thing.kind` to the function that draws it onto a `Canvas` at a camera depth.
"""
from __future__ import annotations

import cv2
import numpy as np

from camseg_core.labels import NAME_TO_LABEL_ID as LID

from .canvas import SHIFT, Canvas
from .layout import Thing


def _draw_vehicle(cv: Canvas, th: Thing, zc: float):
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


def _sprite(cv: Canvas, th: Thing, zc: float, parts):
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
