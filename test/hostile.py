"""Hostile compressed images for the tests: small files whose headers claim huge images."""
import struct
import zlib

import cv2
import numpy as np

from camseg_ros.image_codec import _JPEG_SOF


def jpeg_claiming(height: int, width: int, seed: int = 0) -> bytes:
    """Return a small real JPEG whose frame header is rewritten to claim height x width.

    libjpeg decodes such a file at the claimed size (the missing data is filled in with warnings).
    """
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), np.uint8)
    data = bytearray(cv2.imencode('.jpg', pixels)[1].tobytes())
    pos = 2
    while data[pos + 1] not in _JPEG_SOF:  # the encoder writes no fill bytes or standalone markers
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], 'big')
    struct.pack_into('>HH', data, pos + 5, height, width)  # marker (2), length (2), precision (1)
    return bytes(data)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))


def png_claiming(height: int, width: int) -> bytes:
    """Return a valid all-black 8-bit grey PNG of height x width (deflate packs it about 1000:1).

    Rows are compressed one at a time: building it needs no height x width buffer.
    """
    packer = zlib.compressobj(9)
    row = bytes(1 + width)  # filter type 0, then black pixels
    idat = b''.join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)  # 8 bits, grey, deflate, no interlace
    return (b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', header) + _chunk(b'IDAT', idat)
            + _chunk(b'IEND', b''))


def png_with_header(data: bytes, height: int, width: int) -> bytes:
    """Return a PNG with its IHDR rewritten to claim height x width (its CRC recomputed)."""
    header = struct.pack('>II', width, height) + data[24:29]
    return data[:8] + _chunk(b'IHDR', header) + data[33:]


def _valid_raw(rng, image_cls):
    from camseg_ros.image_codec import BYTES_PER_PIXEL
    encoding = str(rng.choice(sorted(BYTES_PER_PIXEL)))
    bpp = BYTES_PER_PIXEL[encoding]
    height, width = int(rng.integers(8, 49)), 2 * int(rng.integers(4, 33))
    step = width * bpp + int(rng.integers(0, 8))
    data = rng.integers(0, 256, step * height, dtype=np.uint8).tobytes()
    return image_cls(height=height, width=width, encoding=encoding, step=step, data=data,
                     is_bigendian=int(rng.integers(0, 2)) if encoding.endswith('16') else 0)


def _malformed_raw(rng, image_cls, kind: str, max_pixels: int):
    msg = _valid_raw(rng, image_cls)
    if kind == 'encoding':
        msg.encoding = str(rng.choice(['rgb9', '', '8UC3', '32FC1', 'jpeg', 'rgb8 ', 'bayer_rggb16', 'nv12']))
    elif kind == 'step_small':
        from camseg_ros.image_codec import BYTES_PER_PIXEL
        msg.step = msg.width * BYTES_PER_PIXEL[msg.encoding] - int(rng.integers(1, 4))
        msg.data = bytes(msg.data)[:msg.step * msg.height]
    elif kind == 'data_short':
        msg.data = bytes(msg.data)[:len(msg.data) - int(rng.integers(1, 64))]
    elif kind == 'data_long':
        msg.data = bytes(msg.data) + bytes(int(rng.integers(1, 64)))
    elif kind == 'zero':
        msg.height, msg.width, msg.step, msg.data = (0, msg.width, msg.step, b'') if rng.random() < 0.5 \
            else (msg.height, 0, 0, b'')
    elif kind == 'huge_header':
        sizes = [(100000, 100000), (2**31 - 1, 2), (65535, 65535), (4, 2**30)]
        msg.height, msg.width = sizes[rng.integers(4)]
        msg.encoding, msg.step = 'mono8', msg.width
    elif kind == 'odd_yuv':
        msg.encoding, msg.width = 'yuv422', msg.width - 1
        msg.step = 2 * msg.width
        msg.data = bytes(msg.step * msg.height)
    elif kind == 'over_limit':
        side = int(np.sqrt(max_pixels)) + 2
        msg.encoding, msg.height, msg.width, msg.step = 'mono8', side, side, side
        msg.data = bytes(side * side)
    return msg


def _valid_compressed(rng, compressed_cls):
    ext, fmt = [('.jpg', 'jpeg'), ('.png', 'png'), ('.jpg', 'rgb8; jpeg compressed bgr8'),
                ('.png', 'bgr8; png compressed bgr8')][rng.integers(4)]
    pixels = rng.integers(0, 256, (int(rng.integers(8, 49)), int(rng.integers(8, 65)), 3), dtype=np.uint8)
    return compressed_cls(format=fmt, data=cv2.imencode(ext, pixels)[1].tobytes())


def _malformed_compressed(rng, compressed_cls, kind: str, bombs: dict):
    msg = _valid_compressed(rng, compressed_cls)
    data = bytes(msg.data)
    if kind == 'format':
        msg.format = str(rng.choice(['bmp', '', 'compressedDepth png', '16UC1; compressedDepth', 'tiff']))
    elif kind == 'empty':
        msg.data = b''
    elif kind == 'truncated':  # cut before the image data: a JPEG before its scan, a PNG inside IDAT
        if data[:2] == b'\xff\xd8':
            msg.data = data[:int(rng.integers(0, data.index(b'\xff\xda')))]
        else:
            idat = data.index(b'IDAT')
            msg.data = data[:int(rng.integers(0, idat + 4 + int.from_bytes(data[idat - 4:idat], 'big') - 1))]
    elif kind == 'garbage':
        msg.data = rng.integers(0, 256, int(rng.integers(1, 2000)), dtype=np.uint8).tobytes()
    elif kind == 'garbage_after_soi':
        msg.data = b'\xff\xd8' + rng.integers(0, 256, int(rng.integers(1, 2000)), dtype=np.uint8).tobytes()
    elif kind == 'other_format':  # BMP data, named png
        pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        msg.format, msg.data = 'png', cv2.imencode('.bmp', pixels)[1].tobytes()
    elif kind == 'bomb':
        name = str(rng.choice(sorted(bombs)))
        msg.format, msg.data = ('png' if name.startswith('png') else 'jpeg'), bombs[name]
    elif kind == 'zero_size_header':
        msg.format, msg.data = 'jpeg', jpeg_claiming(0, 64)
    return msg


RAW_MALFORMED = ('encoding', 'step_small', 'data_short', 'data_long', 'zero', 'huge_header', 'odd_yuv',
                 'over_limit')
COMPRESSED_MALFORMED = ('format', 'empty', 'truncated', 'garbage', 'garbage_after_soi', 'other_format',
                        'bomb', 'zero_size_header')


def fuzz_messages(seed: int, count: int, transport: str, max_pixels: int, valid_share: float = 0.2):
    """Yield `count` (kind, message, valid) of a seeded mix of valid and malformed sensor_msgs images.

    transport 'raw' gives sensor_msgs/Image, 'compressed' sensor_msgs/CompressedImage. Valid ones are
    small (at most 48x64). 'over_limit' sends a real frame just over `max_pixels`: about 1 in 60 raw ones.
    """
    from sensor_msgs.msg import CompressedImage, Image

    rng = np.random.default_rng(seed)
    small_png = cv2.imencode('.png', np.zeros((8, 8), np.uint8))[1].tobytes()
    side = int(np.sqrt(max_pixels)) + 2
    bombs = {'jpeg_10k': jpeg_claiming(10000, 10000), 'jpeg_65k': jpeg_claiming(65535, 65535),
             'jpeg_just_over': jpeg_claiming(side, side), 'png_10k': png_claiming(10000, 10000),
             'png_header_2g': png_with_header(small_png, 2**31 - 1, 2**31 - 1)}
    for _ in range(count):
        if rng.random() < valid_share:
            msg = _valid_raw(rng, Image) if transport == 'raw' else _valid_compressed(rng, CompressedImage)
            yield 'valid', msg, True
        elif transport == 'raw':
            kind = str(rng.choice(RAW_MALFORMED, p=[0.16, 0.15, 0.15, 0.15, 0.12, 0.13, 0.12, 0.02]))
            yield kind, _malformed_raw(rng, Image, kind, max_pixels), False
        else:
            kind = str(rng.choice(COMPRESSED_MALFORMED))
            yield kind, _malformed_compressed(rng, CompressedImage, kind, bombs), False
