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
