"""sensor_msgs/Image straight from and to its serialised (CDR) bytes, with NumPy and no copies of the pixels.

rclpy turns a received Image into Python objects (the pixels copied into an array.array) and a published one
back into C (copied again): at 1280x720 that is milliseconds per frame on a small CPU. With a raw
subscription the node gets the serialised bytes and `parse_image` reads the fields in place; `image_bytes`
builds an output message with one copy of the pixels, for `Publisher.publish(bytes)`.

The layout is the plain little-endian CDR of ROS 2 (encapsulation 0x0001, what rmw_fastrtps and rmw_cyclonedds
write): primitives aligned to their size relative to the byte after the 4-byte encapsulation header, strings
as a uint32 length (with the NUL) then the bytes and the NUL, sequences as a uint32 count then the elements.
Nothing here imports ROS; tests compare both functions with rclpy's own (de)serialisation.
"""
from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

import numpy as np

CDR_LE = b'\x00\x01'  # encapsulation identifier of plain little-endian CDR
_U32 = struct.Struct('<I')
_STAMP = struct.Struct('<iI')


@dataclass
class Stamp:
    """builtin_interfaces/Time."""

    sec: int = 0
    nanosec: int = 0


@dataclass
class Header:
    """std_msgs/Header."""

    stamp: Stamp
    frame_id: str = ''


@dataclass
class RawImage:
    """The fields of a sensor_msgs/Image; `data` is a read-only view into the serialised bytes."""

    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: memoryview


class _Reader:
    def __init__(self, buf: memoryview):
        self.buf, self.pos = buf, 4  # after the encapsulation header

    def align(self, n: int) -> None:
        self.pos += -(self.pos - 4) % n

    def u32(self) -> int:
        self.align(4)
        if self.pos + 4 > len(self.buf):
            raise ValueError(f'serialised Image ends at byte {len(self.buf)}, inside a field at {self.pos}')
        value = _U32.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        return value

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise ValueError(f'serialised Image ends at byte {len(self.buf)}, '
                             f'{n} bytes needed from {self.pos}')
        view = self.buf[self.pos:self.pos + n]
        self.pos += n
        return view

    def string(self) -> str:
        n = self.u32()
        if n == 0:
            return ''
        return bytes(self.take(n)[:-1]).decode('utf-8', errors='replace')


def parse_image(serialised) -> RawImage:
    """Read a serialised sensor_msgs/Image (bytes-like) without copying its pixels.

    Raises ValueError for bytes that are not little-endian CDR or end early; the caller may fall back to
    rclpy's deserialisation for other encapsulations.
    """
    buf = memoryview(serialised).cast('B')
    if len(buf) < 4 or bytes(buf[:2]) != CDR_LE:
        raise ValueError(f'not a little-endian CDR message (encapsulation {bytes(buf[:2]).hex() or "none"})')
    r = _Reader(buf)
    sec, nanosec = _STAMP.unpack_from(r.take(8))
    frame_id = r.string()
    height, width = r.u32(), r.u32()
    encoding = r.string()
    is_bigendian = r.take(1)[0]
    step = r.u32()
    n = r.u32()
    data = r.take(n)
    return RawImage(Header(Stamp(sec, nanosec), frame_id), height, width, encoding, is_bigendian, step, data)


def write_stamp(serialised: bytearray, stamp_ns: int) -> None:
    """Overwrite, in place, the header stamp of a serialised message that starts with a std_msgs/Header."""
    serialised[4:4 + _STAMP.size] = _STAMP.pack(*divmod(int(stamp_ns), 10**9))


def _string(text: str, pos: int) -> tuple[bytes, int]:
    """CDR bytes of a string starting at body offset `pos` (aligned first), and the offset after it."""
    pad = -pos % 4
    raw = text.encode('utf-8') + b'\x00'
    return b'\x00' * pad + _U32.pack(len(raw)) + raw, pos + pad + 4 + len(raw)


def image_bytes(header, array: np.ndarray, encoding: str) -> bytes:
    """Serialise an Image of `array` ((H, W) or (H, W, C), any dtype, in host byte order) with `header`.

    `header` is anything with stamp.sec, stamp.nanosec and frame_id. The pixels are copied once, into the
    returned bytes.
    """
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    step = array.nbytes // height if height else 0
    parts = [CDR_LE + b'\x00\x00', _STAMP.pack(int(header.stamp.sec), int(header.stamp.nanosec))]
    frame_id, pos = _string(str(header.frame_id), 8)
    pad = -pos % 4
    parts += [frame_id, b'\x00' * pad, _U32.pack(height), _U32.pack(width)]
    encoded, pos = _string(encoding, pos + pad + 8)
    big = int(sys.byteorder == 'big' and array.dtype.itemsize > 1)
    pad = -(pos + 1) % 4
    parts += [encoded, bytes([big]), b'\x00' * pad, _U32.pack(step), _U32.pack(array.nbytes),
              array.reshape(-1).view(np.uint8).data]
    return b''.join(parts)
