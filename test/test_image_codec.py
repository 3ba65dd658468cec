"""Image codec: every supported encoding against an independent numpy reference, padding and bad input."""
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from camseg_ros.image_codec import (SUPPORTED_ENCODINGS, compressed_size, compressed_to_rgb, fill_image,
                                    image_to_rgb)
from hostile import jpeg_claiming, png_claiming

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 10, 3), dtype=np.uint8)  # (H, W, 3)


def make_msg(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: int = 0, width: int | None = None):
    """Build an Image-like message from (H, W, C) or (H, W * bytes) uint8 rows padded with `pad` bytes."""
    h, w = pixels.shape[0], width or pixels.shape[1]
    rows = pixels.reshape(h, -1)
    rows = np.concatenate([rows, np.full((h, pad), 7, np.uint8)], axis=1)
    return SimpleNamespace(height=h, width=w, encoding=encoding, step=rows.shape[1],
                           is_bigendian=bigendian, data=rows.tobytes())


def yuv_reference(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """BT.601 video-range YUV -> RGB, written out by hand."""
    c, d, e = y.astype(np.float64) - 16, u.astype(np.float64) - 128, v.astype(np.float64) - 128
    rgb = np.stack([1.164 * c + 1.596 * e, 1.164 * c - 0.392 * d - 0.813 * e, 1.164 * c + 2.017 * d], -1)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


@pytest.mark.parametrize('pad', [0, 5])
@pytest.mark.parametrize('encoding,pixels,expected', [
    ('rgb8', RGB, RGB),
    ('bgr8', RGB[:, :, ::-1], RGB),
    ('rgba8', np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)]), RGB),
    ('bgra8', np.dstack([RGB[:, :, ::-1], np.full(RGB.shape[:2], 9, np.uint8)]), RGB),
    ('mono8', RGB[:, :, 0], np.repeat(RGB[:, :, :1], 3, axis=2)),
])
def test_plain_encodings(encoding, pixels, expected, pad):
    out = image_to_rgb(make_msg(pixels, encoding, pad))
    assert out.dtype == np.uint8 and out.shape == (6, 10, 3)
    np.testing.assert_array_equal(out, expected)


def words_msg(values: np.ndarray, encoding: str, bigendian: int, pad: int = 2):
    """Build an Image-like message of (H, W[, C]) uint16 values in the given byte order, rows padded."""
    h, w = values.shape[:2]
    raw = values.astype('>u2' if bigendian else '<u2').view(np.uint8).reshape(h, -1)
    return make_msg(raw, encoding, pad=pad, bigendian=bigendian, width=w)


@pytest.mark.parametrize('encoding', ['mono16', '16UC1'])
@pytest.mark.parametrize('bigendian', [0, 1])
def test_16bit_mono_scaled_by_significant_bits(encoding, bigendian):
    values = RNG.integers(0, 65536, (4, 6), dtype=np.uint16)
    out = image_to_rgb(words_msg(values, encoding, bigendian))  # default: all 16 bits significant
    assert out.shape == (4, 6, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 1], np.round(values / 65535 * 255).astype(np.uint8))
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])
    # A 12-bit camera in 16-bit words: 4095 is full white, not the almost black 15 of the high byte.
    twelve = np.array([[0, 1024, 2048, 4095, 5000]], np.uint16)
    out = image_to_rgb(words_msg(twelve, encoding, bigendian), bits16=12)
    np.testing.assert_array_equal(out[0, :, 0], [0, 64, 128, 255, 255])
    # 0: the frame's own range.
    out = image_to_rgb(words_msg(np.array([[100, 150, 200]], np.uint16), encoding, bigendian), bits16=0)
    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255])


@pytest.mark.parametrize('encoding', ['rgb16', 'bgr16'])
@pytest.mark.parametrize('bigendian', [0, 1])
def test_16bit_colour(encoding, bigendian):
    rgb = RGB.astype(np.uint16) * 257  # 8-bit values spread over 16 bits: v * 257 / 65535 * 255 == v
    pixels = rgb if encoding == 'rgb16' else rgb[:, :, ::-1]
    out = image_to_rgb(words_msg(np.ascontiguousarray(pixels), encoding, bigendian))
    np.testing.assert_array_equal(out, RGB)
    dim = (RGB.astype(np.uint16) * 16).astype(np.uint16)  # 12-bit data: 255 * 16 = 4080 of 4095
    pixels = dim if encoding == 'rgb16' else dim[:, :, ::-1]
    out = image_to_rgb(words_msg(np.ascontiguousarray(pixels), encoding, bigendian), bits16=12)
    assert np.abs(out.astype(int) - RGB.astype(int)).max() <= 1


def test_16bit_bits_out_of_range():
    with pytest.raises(ValueError, match='0..16 significant bits'):
        image_to_rgb(words_msg(np.zeros((2, 2), np.uint16), 'mono16', 0), bits16=17)


@pytest.mark.parametrize('encoding,order', [('yuv422', 'UYVY'), ('uyvy', 'UYVY'),
                                            ('yuv422_yuy2', 'YUYV'), ('yuyv', 'YUYV')])
def test_yuv422(encoding, order):
    h, w = 4, 8
    y = RNG.integers(16, 236, (h, w), dtype=np.uint8)
    u = RNG.integers(16, 241, (h, w // 2), dtype=np.uint8)
    v = RNG.integers(16, 241, (h, w // 2), dtype=np.uint8)
    packed = np.zeros((h, w // 2, 4), np.uint8)  # one macro-pixel = 2 pixels = 4 bytes
    parts = {'Y0': y[:, 0::2], 'Y1': y[:, 1::2], 'U': u, 'V': v}
    names = ['U', 'Y0', 'V', 'Y1'] if order == 'UYVY' else ['Y0', 'U', 'Y1', 'V']
    for i, name in enumerate(names):
        packed[:, :, i] = parts[name]
    out = image_to_rgb(make_msg(packed.reshape(h, w * 2), encoding, pad=4, width=w))
    out = out.reshape(h, w, 3)
    expected = yuv_reference(y, np.repeat(u, 2, axis=1), np.repeat(v, 2, axis=1))
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 3


@pytest.mark.parametrize('encoding', ['bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8'])
def test_bayer_constant_colour(encoding):
    colour = {'r': 200, 'g': 100, 'b': 50}
    pattern = encoding[6:10]  # top-left 2x2 block, row by row
    mosaic = np.zeros((8, 12), np.uint8)
    for k, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        mosaic[dy::2, dx::2] = colour[pattern[k]]
    out = image_to_rgb(make_msg(mosaic, encoding, pad=3))
    assert out.shape == (8, 12, 3)
    np.testing.assert_array_equal(out[2:-2, 2:-2], np.broadcast_to([200, 100, 50], (4, 8, 3)))


def test_every_supported_encoding_is_tested():
    tested = {'rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', '16uc1', 'rgb16', 'bgr16', 'yuv422',
              'uyvy', 'yuv422_yuy2', 'yuyv', 'bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8'}
    assert set(SUPPORTED_ENCODINGS) == tested


@pytest.mark.parametrize('change,match', [
    (dict(encoding='32FC1'), 'unsupported encoding'),
    (dict(encoding='8UC3'), 'unsupported encoding'),
    (dict(step=10 * 3 - 1), 'step 29 is smaller'),
    (dict(step=10 * 3 + 1), 'expected step 31 x height 6'),
    (dict(height=7), 'expected step 30 x height 7'),
    (dict(data=RGB.tobytes()[:-1]), 'data has 179 bytes'),
    (dict(height=0), 'zero image size'),
    (dict(width=0, step=0), 'zero image size'),
])
def test_bad_images_name_the_problem(change, match):
    msg = make_msg(RGB, 'rgb8')
    for k, v in change.items():
        setattr(msg, k, v)
    with pytest.raises(ValueError, match=match):
        image_to_rgb(msg)


def test_size_limit_and_odd_yuv_width():
    with pytest.raises(ValueError, match='exceeds max_input_pixels=59'):
        image_to_rgb(make_msg(RGB, 'rgb8'), max_pixels=59)
    assert image_to_rgb(make_msg(RGB, 'rgb8'), max_pixels=60).shape == (6, 10, 3)
    with pytest.raises(ValueError, match='even width'):
        image_to_rgb(make_msg(np.zeros((2, 6), np.uint8), 'yuv422', width=3))


def test_compressed_png_exact_and_jpeg_close():
    xs, ys = np.meshgrid(np.arange(48) * 5, np.arange(32) * 7)
    smooth = np.dstack([xs, ys, np.full((32, 48), 90)]).astype(np.uint8)  # (32, 48, 3), smooth for JPEG
    bgr = smooth[:, :, ::-1]
    png = SimpleNamespace(format='png', data=cv2.imencode('.png', bgr)[1].tobytes())
    np.testing.assert_array_equal(compressed_to_rgb(png), smooth)
    jpeg = SimpleNamespace(format='rgb8; jpeg compressed bgr8',
                           data=cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
    out = compressed_to_rgb(jpeg)
    assert out.shape == (32, 48, 3) and np.abs(out.astype(int) - smooth).mean() < 3
    with pytest.raises(ValueError, match='exceeds max_input_pixels'):
        compressed_to_rgb(png, max_pixels=100)


@pytest.mark.parametrize('fmt,data,match', [
    ('jpeg', b'\xff\xd8\xff\xe0garbage' * 10, 'corrupt JPEG'),
    ('jpeg', b'\xff\xd8\xff\xc0\x00\x11\x08\x00\x10\x00\x10' + bytes(40), 'undecodable'),
    ('png', b'GIF89a' + bytes(40), 'neither JPEG nor PNG'),
    ('png', b'\x89PNG\r\n\x1a\n' + bytes(40), 'no IHDR'),
    ('png', b'', 'no data'),
    ('16UC1; compressedDepth png', b'\x00' * 20, 'unsupported compressed format'),
    ('tiff', b'\x00' * 20, 'unsupported compressed format'),
])
def test_corrupt_compressed(fmt, data, match):
    with pytest.raises(ValueError, match=match):
        compressed_to_rgb(SimpleNamespace(format=fmt, data=data))


def test_truncated_jpeg_is_an_error_or_an_image():
    full = cv2.imencode('.jpg', RGB)[1].tobytes()
    with pytest.raises(ValueError, match='corrupt JPEG'):
        compressed_to_rgb(SimpleNamespace(format='jpeg', data=full[:20]))


@pytest.mark.parametrize('ext, params', [('.jpg', []), ('.jpg', [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
                                         ('.png', [])])
def test_compressed_size_from_the_header(ext, params):
    data = cv2.imencode(ext, np.zeros((37, 53, 3), np.uint8), params)[1].tobytes()
    assert compressed_size(data) == (37, 53)
    assert compressed_size(np.frombuffer(data, np.uint8)) == (37, 53)
    if ext == '.jpg':  # fill bytes and a restart marker before the segments change nothing
        padded = data[:2] + b'\xff\xff\xff\xd0' + data[2:]
        assert compressed_size(padded) == (37, 53)


def test_bombs_are_refused_before_decoding():
    """Small files claiming 10000x10000 (each decodes to 300 MB in seconds) are refused in microseconds."""
    import tracemalloc
    bombs = {'jpeg': jpeg_claiming(10000, 10000), 'png': png_claiming(10000, 10000)}
    assert max(len(b) for b in bombs.values()) < 200_000
    tracemalloc.start()
    try:
        for fmt, data in bombs.items():
            start = time.perf_counter()
            with pytest.raises(ValueError, match='10000x10000 = 100000000 pixels exceeds max_input_pixels'):
                compressed_to_rgb(SimpleNamespace(format=fmt, data=data), max_pixels=3840 * 2160)
            assert time.perf_counter() - start < 0.05, fmt
        assert tracemalloc.get_traced_memory()[1] < 1_000_000  # peak bytes allocated meanwhile
    finally:
        tracemalloc.stop()
    # The JPEG's format field may say png and the other way round: the signature decides.
    with pytest.raises(ValueError, match='exceeds'):
        compressed_to_rgb(SimpleNamespace(format='png', data=bombs['jpeg']), max_pixels=10**6)


@pytest.mark.parametrize('encoding,array', [
    ('mono8', RNG.integers(0, 256, (5, 7), dtype=np.uint8)),
    ('rgb8', RGB),
    ('32FC1', RNG.random((5, 7), dtype=np.float32)),
])
def test_fill_image_round_trip(encoding, array):
    msg = fill_image(SimpleNamespace(), array, encoding)
    assert (msg.height, msg.width, msg.encoding) == (array.shape[0], array.shape[1], encoding)
    assert msg.step * msg.height == len(msg.data)
    back = np.frombuffer(msg.data, array.dtype).reshape(array.shape)
    np.testing.assert_array_equal(back, array)
    if encoding == 'rgb8':
        np.testing.assert_array_equal(image_to_rgb(msg), array)


def test_fill_image_rejects_mismatch():
    with pytest.raises(ValueError, match='32FC1 needs a float32'):
        fill_image(SimpleNamespace(), np.zeros((2, 2), np.float64), '32FC1')
    with pytest.raises(ValueError, match='cannot write encoding'):
        fill_image(SimpleNamespace(), np.zeros((2, 2), np.uint8), 'mono16')


def test_real_sensor_msgs_image():
    sensor_msgs = pytest.importorskip('sensor_msgs.msg', reason='sensor_msgs (ROS 2) not installed')
    msg = fill_image(sensor_msgs.Image(), RGB, 'rgb8')
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)
    msg.encoding = 'bgr8'
    np.testing.assert_array_equal(image_to_rgb(msg), RGB[:, :, ::-1])
