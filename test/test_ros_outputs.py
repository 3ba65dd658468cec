"""The node's per-frame outputs without ROS: void pixels, lazy rendering, processing size, camera_info."""
from types import SimpleNamespace

import numpy as np

from camseg_core.labels import IGNORE_INDEX, PALETTE
from camseg_ros.outputs import processing_shape, render, scale_camera_info, to_processing_resolution

RNG = np.random.default_rng(0)


def result(h=6, w=8):
    """Labels with void (255) pixels, as the Segmenter returns where black (void) decodes nearest."""
    labels = RNG.integers(0, 19, (h, w)).astype(np.uint8)
    labels[0, :] = IGNORE_INDEX
    return labels, RNG.uniform(0.5, 1.0, (h, w)).astype(np.float32), RNG.integers(1, 256, (h, w, 3), np.uint8)


def test_void_is_255_in_the_mask_and_black_in_colour_and_overlay():
    labels, conf, rgb = result()
    out = render({'mask', 'color', 'overlay'}, labels, conf, rgb, threshold=0.0, alpha=1.0)
    assert (out['mask'][0] == 255).all() and (out['mask'][1:] == labels[1:]).all()
    assert (out['color'][0] == 0).all() and (out['overlay'][0] == 0).all()
    np.testing.assert_array_equal(out['color'][1:], PALETTE[labels[1:]])
    half = render({'overlay'}, labels, conf, rgb, threshold=0.0, alpha=0.5)['overlay']
    assert np.abs(half[0].astype(int) - rgb[0].astype(int) * 0.5).max() <= 1  # void: the input darkened


def test_only_wanted_outputs_are_computed_and_threshold_marks_uncertain_pixels():
    labels, conf, rgb = result()
    assert render(set(), labels, conf, rgb, 0.0, 0.5) == {}
    out = render({'confidence'}, labels, conf, rgb, 0.9, 0.5)
    assert set(out) == {'confidence'} and out['confidence'] is conf
    mask = render({'mask'}, labels, conf, rgb, 0.9, 0.5)['mask']
    assert (mask[conf < 0.9] == 255).all() and (mask[conf >= 0.9] == labels[conf >= 0.9]).all()


def test_processing_resolution_keeps_aspect_and_never_upsamples():
    assert processing_shape(720, 1280, (128, 256)) == (128, 228)
    assert processing_shape(240, 320, (128, 256)) == (128, 171)
    assert processing_shape(60, 80, (128, 256)) == (60, 80)
    assert to_processing_resolution(np.zeros((720, 1280, 3), np.uint8), (128, 256)).shape == (128, 228, 3)


def test_camera_info_scaled_to_the_output():
    roi = SimpleNamespace(x_offset=100, y_offset=50, width=640, height=360)
    info = SimpleNamespace(width=1280, height=720, k=np.array([1000.0, 0, 640, 0, 1000, 360, 0, 0, 1]),
                           p=np.array([1000.0, 0, 640, -50, 0, 1000, 360, 0, 0, 0, 1, 0]), roi=roi)
    scale_camera_info(info, 320, 180, 1280, 720)
    assert (info.width, info.height) == (320, 180)
    np.testing.assert_allclose(info.k, [250, 0, 160, 0, 250, 90, 0, 0, 1])
    np.testing.assert_allclose(info.p, [250, 0, 160, -12.5, 0, 250, 90, 0, 0, 0, 1, 0])
    assert (roi.x_offset, roi.y_offset, roi.width, roi.height) == (25, 12, 160, 90)
    # An uncalibrated info (zero size) describes the input image.
    blank = SimpleNamespace(width=0, height=0, k=np.zeros(9), p=np.zeros(12),
                            roi=SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0))
    assert (scale_camera_info(blank, 64, 32, 128, 64).width, blank.height) == (64, 32)
