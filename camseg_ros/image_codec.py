"""sensor_msgs Image / CompressedImage <-> numpy, without cv_bridge.

Pure numpy (plus OpenCV for JPEG/PNG, YUV 4:2:2 and Bayer conversions), so it can be used and tested
without ROS: every function takes any object with the message's fields. Errors are ValueError naming
the problem; nothing is silently passed through.
"""
from __future__ import annotations

import array as pyarray
import struct
import sys

import cv2
import numpy as np

# encoding -> (bytes per pixel, how to turn the (H, W, C) array into RGB)
_BAYER = {  # ROS names the 2x2 pattern from the top-left pixel; OpenCV's 4-letter aliases do the same
    'bayer_rggb8': cv2.COLOR_BayerRGGB2RGB,
    'bayer_bggr8': cv2.COLOR_BayerBGGR2RGB,
    'bayer_gbrg8': cv2.COLOR_BayerGBRG2RGB,
    'bayer_grbg8': cv2.COLOR_BayerGRBG2RGB,
}
_YUV422 = {  # two bytes per pixel, chroma shared by each horizontal pair
    'yuv422': cv2.COLOR_YUV2RGB_UYVY,  # ROS: U Y0 V Y1
    'uyvy': cv2.COLOR_YUV2RGB_UYVY,
    'yuv422_yuy2': cv2.COLOR_YUV2RGB_YUY2,  # ROS: Y0 U Y1 V
    'yuyv': cv2.COLOR_YUV2RGB_YUY2,
}
_WIDE = {'mono16': 1, '16uc1': 1, 'rgb16': 3, 'bgr16': 3}  # 16-bit words: channels per pixel
BYTES_PER_PIXEL = {
    'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1,
    **{name: 2 * channels for name, channels in _WIDE.items()},
    **{name: 2 for name in _YUV422}, **{name: 1 for name in _BAYER},
}
SUPPORTED_ENCODINGS = tuple(BYTES_PER_PIXEL)
COMPRESSED_FORMATS = ('jpeg', 'jpg', 'png')
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
JPEG_SOI = b'\xff\xd8'
# JPEG frame headers (SOF0..SOF15) hold the image size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])  # TEM, RST0..7: no length field
_OUTPUT_DTYPES = {'mono8': (np.uint8, 1), 'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3),
                  '32FC1': (np.float32, 1)}


def stamp_ns(header) -> int:
    """Return a std_msgs/Header's stamp as integer nanoseconds."""
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)


def check_size(height: int, width: int, max_pixels: int | None) -> None:
    """Raise ValueError for a zero or over-limit image size."""
    if height <= 0 or width <= 0:
        raise ValueError(f'zero image size {height}x{width}')
    if max_pixels is not None and height * width > max_pixels:
        raise ValueError(f'image {height}x{width} = {height * width} pixels '
                         f'exceeds max_input_pixels={max_pixels}')


def to_8bit(words: np.ndarray, bits: int = 16) -> np.ndarray:
    """Scale 16-bit pixel values to uint8: `bits` significant bits (1..16), or 0 for the data's own range.

    A 12-bit camera in 16-bit words has bits=12: 4095 becomes 255. Values above the range saturate.
    """
    if not 0 <= bits <= 16:
        raise ValueError(f'16-bit scaling needs 0..16 significant bits, got {bits}')
    if bits:
        low, high = 0, (1 << bits) - 1
    else:
        low, high = int(words.min()), int(words.max())
    span = max(high - low, 1)
    scaled = (np.clip(words, low, high).astype(np.uint32) - low) * 255 + span // 2
    return (scaled // span).astype(np.uint8)


def image_to_rgb(msg, max_pixels: int | None = None, bits16: int = 16) -> np.ndarray:
    """Decode a sensor_msgs/Image (or anything with its fields) to an (H, W, 3) uint8 RGB array.

    Supports rgb8, bgr8, rgba8, bgra8, mono8, yuv422/uyvy, yuv422_yuy2/yuyv, the four bayer_*8
    patterns and the 16-bit mono16, 16UC1, rgb16 and bgr16, scaled by `to_8bit(bits16)`. Row padding
    (step > width * bytes) is dropped. Raises ValueError for unsupported encodings and inconsistent or
    over-limit sizes.
    """
    encoding = str(msg.encoding).lower()
    if encoding not in BYTES_PER_PIXEL:
        raise ValueError(f'unsupported encoding {msg.encoding!r}; '
                         f'supported: {", ".join(SUPPORTED_ENCODINGS)}')
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    check_size(height, width, max_pixels)
    bpp = BYTES_PER_PIXEL[encoding]
    if encoding in _YUV422 and width % 2:
        raise ValueError(f'{encoding} needs an even width, got {width}')
    if step < width * bpp:
        raise ValueError(f'step {step} is smaller than width {width} x {bpp} bytes per pixel ({encoding})')
    data = np.frombuffer(msg.data, dtype=np.uint8)  # zero-copy view
    if data.size != step * height:
        raise ValueError(f'data has {data.size} bytes, '
                         f'expected step {step} x height {height} = {step * height}')
    rows = data.reshape(height, step)[:, :width * bpp]  # (H, W * bpp), padding dropped
    if encoding in _WIDE:
        channels = _WIDE[encoding]
        words = rows.view('>u2' if msg.is_bigendian else '<u2').reshape(height, width, channels)  # (H, W, C)
        pixels = to_8bit(words, bits16)
        if channels == 1:
            return np.repeat(pixels, 3, axis=2)
        return pixels if encoding == 'rgb16' else np.ascontiguousarray(pixels[:, :, ::-1])
    if encoding == 'mono8':
        return cv2.cvtColor(np.ascontiguousarray(rows), cv2.COLOR_GRAY2RGB)
    if encoding in _BAYER:
        return cv2.cvtColor(np.ascontiguousarray(rows), _BAYER[encoding])
    pixels = rows.reshape(height, width, bpp)  # (H, W, C)
    if encoding in _YUV422:
        return cv2.cvtColor(np.ascontiguousarray(pixels), _YUV422[encoding])
    if encoding == 'rgb8':
        return pixels
    if encoding == 'rgba8':
        return np.ascontiguousarray(pixels[:, :, :3])
    return np.ascontiguousarray(pixels[:, :, 2::-1])  # bgr8 / bgra8 -> RGB


def compressed_to_rgb(msg, max_pixels: int | None = None) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (JPEG or PNG) to an (H, W, 3) uint8 RGB array.

    The format field may be 'jpeg', 'png' or the image_transport style 'rgb8; jpeg compressed bgr8'.
    The size in the data's header is checked against `max_pixels` before anything is decoded. Raises
    ValueError for other formats (e.g. compressedDepth), data that is not JPEG or PNG, and undecodable data.
    """
    fmt = str(msg.format).lower()
    if 'compresseddepth' in fmt or not any(name in fmt for name in COMPRESSED_FORMATS):
        raise ValueError(f'unsupported compressed format {msg.format!r}; expected jpeg or png')
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise ValueError('compressed image has no data')
    check_size(*compressed_size(data), max_pixels)  # before decoding: a small file can claim a huge image
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f'undecodable {msg.format!r} data ({data.size} bytes)')
    check_size(bgr.shape[0], bgr.shape[1], max_pixels)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def compressed_size(data) -> tuple[int, int]:
    """Return (height, width) from a JPEG's frame header or a PNG's IHDR chunk, without decoding.

    `data` is any buffer (bytes, uint8 array). Raises ValueError for data that is neither JPEG nor PNG (by
    its signature, whatever the message's format field says) and for a header that cannot be read.
    """
    view = memoryview(data).cast('B')
    if view[:8] == PNG_SIGNATURE:
        if len(view) < 24 or view[12:16] != b'IHDR':
            raise ValueError('corrupt PNG: no IHDR chunk after the signature')
        width, height = struct.unpack_from('>II', view, 16)
        return height, width
    if view[:2] == JPEG_SOI:
        return _jpeg_size(view)
    raise ValueError(f'data is neither JPEG nor PNG (starts with {bytes(view[:8]).hex()})')


def _jpeg_size(view: memoryview) -> tuple[int, int]:
    """Walk a JPEG's marker segments up to its frame header (SOF) and return (height, width)."""
    pos, end = 2, len(view)
    while pos < end:
        if view[pos] != 0xFF:
            raise ValueError(f'corrupt JPEG: no marker at byte {pos}')
        while pos < end and view[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos + 2 >= end:
            break
        marker, pos = view[pos], pos + 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan: no frame header came first
            break
        length = int.from_bytes(view[pos:pos + 2], 'big')
        if length < 2:
            raise ValueError(f'corrupt JPEG: segment length {length} at byte {pos}')
        if marker in _JPEG_SOF:
            if pos + 7 > end:
                break
            height, width = struct.unpack_from('>HH', view, pos + 3)  # after length and sample precision
            return height, width
        pos += length
    raise ValueError('corrupt JPEG: no frame header (SOF) before its image data')


def fill_image(msg, array: np.ndarray, encoding: str):
    """Fill a sensor_msgs/Image from an array: (H, W) mono8 / 32FC1 or (H, W, 3) rgb8 / bgr8.

    Sets height, width, encoding, is_bigendian, step and data (one copy, straight into the array.array that
    rclpy keeps for uint8[]: `msg.data = array.tobytes()` would copy twice). Returns msg.
    """
    if encoding not in _OUTPUT_DTYPES:
        raise ValueError(f'cannot write encoding {encoding!r}; choose from {sorted(_OUTPUT_DTYPES)}')
    dtype, channels = _OUTPUT_DTYPES[encoding]
    shape_ok = array.ndim == 2 if channels == 1 else (array.ndim == 3 and array.shape[2] == channels)
    if array.dtype != dtype or not shape_ok:
        raise ValueError(f'{encoding} needs a {dtype.__name__} array with {channels} channel(s), '
                         f'got {array.dtype} {array.shape}')
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == 'big' and array.dtype.itemsize > 1)
    msg.step = int(array.shape[1] * channels * array.dtype.itemsize)
    data = pyarray.array('B')
    data.frombytes(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    msg.data = data
    return msg
