"""cdr: sensor_msgs/Image read from and written to serialised bytes, checked against rclpy's serialisation."""
import numpy as np
import pytest

from camseg_ros import cdr
from camseg_ros.image_codec import fill_image, image_to_rgb

serialization = pytest.importorskip('rclpy.serialization', reason='rclpy is not installed')
Image = pytest.importorskip('sensor_msgs.msg', reason='sensor_msgs is not installed').Image

RNG = np.random.default_rng(0)


def ros_image(frame_id: str, encoding: str, array: np.ndarray, sec: int = -5, nanosec: int = 999_999_999):
    msg = fill_image(Image(), array, 'mono8' if array.ndim == 2 else 'rgb8')
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, nanosec, frame_id
    msg.encoding, msg.is_bigendian = encoding, 1
    return msg


# frame ids and encodings of every length modulo 4 move the fields after them across alignment boundaries
@pytest.mark.parametrize('frame_id', ['', 'c', 'ca', 'cam', 'camera_optical', 'kamera_ü'])
@pytest.mark.parametrize('encoding', ['rgb8', 'mono8', 'bgr16', '32FC1', 'x'])
def test_parse_matches_rclpy(frame_id, encoding):
    array = RNG.integers(0, 256, (3, 7, 3), dtype=np.uint8)
    msg = ros_image(frame_id, encoding, array)
    raw = cdr.parse_image(serialization.serialize_message(msg))
    stamp = raw.header.stamp
    assert (stamp.sec, stamp.nanosec, raw.header.frame_id) == (-5, 999_999_999, frame_id)
    assert (raw.height, raw.width, raw.encoding, raw.is_bigendian, raw.step) == (3, 7, encoding, 1, 21)
    assert bytes(raw.data) == array.tobytes()


@pytest.mark.parametrize('frame_id', ['', 'c', 'ca', 'cam', 'camera_optical'])
@pytest.mark.parametrize('encoding,array', [
    ('mono8', RNG.integers(0, 256, (5, 9), dtype=np.uint8)),
    ('rgb8', RNG.integers(0, 256, (4, 3, 3), dtype=np.uint8)),
    ('32FC1', RNG.random((2, 5), dtype=np.float32)),
])
def test_written_bytes_deserialise_in_rclpy(frame_id, encoding, array):
    header = cdr.Header(cdr.Stamp(1_700_000_000, 42), frame_id)
    msg = serialization.deserialize_message(cdr.image_bytes(header, array, encoding), Image)
    reference = fill_image(Image(), array, encoding)
    reference.header.stamp.sec, reference.header.stamp.nanosec = 1_700_000_000, 42
    reference.header.frame_id = frame_id
    assert msg == reference


def test_parsed_image_decodes_like_the_message():
    array = RNG.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    msg = ros_image('cam', 'bgr8', array)
    msg.is_bigendian = 0
    raw = cdr.parse_image(serialization.serialize_message(msg))
    np.testing.assert_array_equal(image_to_rgb(raw), image_to_rgb(msg))


def test_bad_bytes_are_a_clear_error():
    good = serialization.serialize_message(ros_image('cam', 'rgb8', np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(ValueError, match='ends at byte'):
        cdr.parse_image(good[:-5])  # pixels cut short
    with pytest.raises(ValueError, match='ends at byte'):
        cdr.parse_image(good[:10])  # inside the frame id
    with pytest.raises(ValueError, match='little-endian'):
        cdr.parse_image(b'\x00\x00' + good[2:])  # big-endian encapsulation
    with pytest.raises(ValueError, match='little-endian'):
        cdr.parse_image(b'')


def test_write_stamp_changes_only_the_stamp():
    array = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    serialised = bytearray(cdr.image_bytes(cdr.Header(cdr.Stamp(1, 2), 'cam'), array, 'rgb8'))
    cdr.write_stamp(serialised, -3 * 10**9 + 7)  # before 1970: sec -3, nanosec 7 as in builtin_interfaces
    msg = serialization.deserialize_message(bytes(serialised), Image)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (-3, 7)
    assert msg.header.frame_id == 'cam' and bytes(msg.data) == array.tobytes()
