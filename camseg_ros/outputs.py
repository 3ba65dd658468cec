"""What the node publishes for a frame, without ROS: output resolution, rendered outputs, camera_info."""
from __future__ import annotations

import cv2
import numpy as np

from camseg_core.labels import IGNORE_INDEX, colorize

ENCODINGS = {'mask': 'mono8', 'confidence': '32FC1', 'color': 'rgb8', 'overlay': 'rgb8'}


def processing_shape(height: int, width: int, size: tuple[int, int]) -> tuple[int, int]:
    """Return the (h, w) an image takes inside the model's processing `size` (H, W), aspect ratio kept.

    Never larger than the image: a small image keeps its size.
    """
    scale = min(size[0] / height, size[1] / width, 1.0)
    return max(1, round(height * scale)), max(1, round(width * scale))


def to_processing_resolution(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Shrink an (H, W, 3) image to its processing shape (area averaging); returned as is if it fits."""
    h, w = processing_shape(rgb.shape[0], rgb.shape[1], size)
    if (h, w) == rgb.shape[:2]:
        return rgb
    return cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=cv2.INTER_AREA)


def render(wanted, labels: np.ndarray, confidence: np.ndarray, rgb: np.ndarray, threshold: float,
           alpha: float) -> dict[str, np.ndarray]:
    """Compute only the `wanted` outputs (names of ENCODINGS) of one result.

    labels (H, W) uint8 trainIds (IGNORE_INDEX 255 = void), confidence (H, W) float32, rgb (H, W, 3) the
    input at the same size. Pixels under `threshold` confidence become 255 in the mask. Void pixels are
    black in the colour mask, so the overlay darkens them (alpha 1: black).
    """
    out = {}
    if threshold > 0 and wanted & {'mask', 'color', 'overlay'}:
        labels = np.where(confidence < threshold, np.uint8(IGNORE_INDEX), labels)
    if 'mask' in wanted:
        out['mask'] = labels
    if 'confidence' in wanted:
        out['confidence'] = confidence
    if wanted & {'color', 'overlay'}:
        color = colorize(labels)  # (H, W, 3), void black
        if 'color' in wanted:
            out['color'] = color
        if 'overlay' in wanted:
            out['overlay'] = cv2.addWeighted(np.ascontiguousarray(rgb), 1.0 - alpha, color, alpha, 0.0)
    return out


def scale_camera_info(info, width: int, height: int, input_width: int, input_height: int):
    """Scale a sensor_msgs/CameraInfo (in place) to an image of `width` x `height`; returns it.

    The info describes the input image (its own width and height when set, else `input_width` and
    `input_height`). K and P rows 0 and 1 and the ROI scale as image_proc's resize scales them; D and R
    are resolution independent.
    """
    sx = width / (info.width or input_width)
    sy = height / (info.height or input_height)
    if (sx, sy) != (1.0, 1.0):
        k = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
        k[0] *= sx
        k[1] *= sy
        info.k = k.ravel()
        p = np.asarray(info.p, dtype=np.float64).reshape(3, 4)
        p[0] *= sx
        p[1] *= sy
        info.p = p.ravel()
        roi = info.roi
        roi.x_offset, roi.width = round(roi.x_offset * sx), round(roi.width * sx)
        roi.y_offset, roi.height = round(roi.y_offset * sy), round(roi.height * sy)
    info.width, info.height = int(width), int(height)
    return info
