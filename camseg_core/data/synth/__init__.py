"""Procedural street scenes seen from a car: RGB image, exact Cityscapes labelIds and metric depth.

A scene is a *layout* (a street in world coordinates) seen by a pinhole camera. World axes: X right,
Y up, Z forward along the street, in metres, origin on the road centre line. The ground, the facade
planes along both sides and the far backdrop are rendered per pixel by analytic ray-plane
intersection (vectorised NumPy); objects (vehicles, people, poles, signs, trees) are OpenCV polygon
fills drawn far to near. A drive is the same layout rendered at later times: the camera moves
forward at `layout.speed` and so does the traffic (`render_layout(layout, t)`).

The subpackage: `layout` (configuration, random street, objects), `canvas` (projection, polygon fills and
the per-pixel background), `draw` (object sprites) and `render` (a frame at a time).
"""
from .canvas import NEAR, SHIFT, Canvas
from .draw import DRAW
from .layout import (BUILDING, FENCE, GAP, VEGETATION, WALL, Layout, Plane, Scene, SceneConfig, Thing,
                     make_layout)
from .render import MIN_PIXELS, render_layout, render_scene

__all__ = ['BUILDING', 'Canvas', 'DRAW', 'FENCE', 'GAP', 'Layout', 'MIN_PIXELS', 'NEAR', 'Plane', 'SHIFT',
           'Scene', 'SceneConfig', 'Thing', 'VEGETATION', 'WALL', 'make_layout', 'render_layout',
           'render_scene']
