"""rosbag2 without rclpy: read image and label topics (MCAP, sqlite3, cut-off MCAP), write MCAP bags."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import yaml
from mcap.exceptions import McapError
from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from camseg_ros.image_codec import fill_image

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
STRETCHES_FILE = 'stretches.json'
STRETCHES_KEY = 'camseg.stretches'


class BagError(ValueError):
    """A bag that cannot be read: missing or cut-off file, missing topic, unknown message type."""


def _mcap_file(bag: Path) -> Path | None:
    if bag.suffix == '.mcap':
        return bag
    files = sorted(bag.glob('*.mcap')) if bag.is_dir() else []
    return files[0] if len(files) == 1 else None


def _check(topic: str, msgtype: str, allowed: dict[str, tuple[str, ...]]) -> None:
    if msgtype not in allowed[topic]:
        raise BagError(f'topic {topic} has unknown message type {msgtype}; expected one of {allowed[topic]}')


def _stream_mcap(path: Path, allowed: dict):
    """Read an MCAP file front to back (no footer needed); a cut-off end raises BagError."""
    schemas, channels, count = {}, {}, 0
    with open(path, 'rb') as f:
        try:
            for rec in StreamReader(f).records:
                if isinstance(rec, Schema):
                    schemas[rec.id] = rec.name
                elif isinstance(rec, Channel):
                    channels[rec.id] = (rec.topic, schemas.get(rec.schema_id, ''))
                elif isinstance(rec, Message) and channels.get(rec.channel_id, ('',))[0] in allowed:
                    topic, msgtype = channels[rec.channel_id]
                    _check(topic, msgtype, allowed)
                    count += 1
                    yield topic, msgtype, rec.log_time, rec.data
        except (McapError, EOFError) as err:
            raise BagError(f'bag file {path} is cut off or corrupt after {count} messages '
                           f'({type(err).__name__}: {err})') from err
    seen = {t for t, _ in channels.values()}
    missing = [t for t in allowed if t not in seen]
    if missing:
        raise BagError(f'topic(s) {missing} not in bag {path}; it has {sorted(seen)}')


def read_messages(bag: str | Path, allowed: dict[str, tuple[str, ...]], typestore):
    """Yield (topic, msgtype, log time ns, CDR bytes) of the `allowed` topics (topic -> message types).

    Raises BagError (on the first `next`) for a missing bag, topic or message type, and while
    iterating when the bag turns out to be cut off or corrupt.
    """
    bag = Path(bag)
    if not bag.exists():
        raise FileNotFoundError(f'bag {bag} does not exist')
    reader = AnyReader([bag], default_typestore=typestore)
    try:
        reader.open()
    except AnyReaderError as err:
        mcap = _mcap_file(bag)
        if mcap is None or 'magic' not in str(err).lower():
            raise BagError(f'cannot read bag {bag}: {err}') from err
        yield from _stream_mcap(mcap, allowed)  # no footer: cut off while recording
        return
    try:
        missing = [t for t in allowed if t not in reader.topics]
        if missing:
            raise BagError(f'topic(s) {missing} not in bag {bag}; it has {sorted(reader.topics)}')
        conns = [c for c in reader.connections if c.topic in allowed]
        for c in conns:
            _check(c.topic, c.msgtype, allowed)
        count, stream = 0, reader.messages(connections=conns)
        while True:
            try:
                conn, log_ns, raw = next(stream)
            except StopIteration:
                return
            except Exception as err:  # each storage backend raises its own types
                raise BagError(f'bag {bag} is cut off or corrupt after {count} messages '
                               f'({type(err).__name__}: {err})') from err
            count += 1
            yield conn.topic, conn.msgtype, log_ns, raw
    finally:
        reader.close()


def load_stretches(bag: str | Path) -> list[dict] | None:
    """Return the weather stretches of a camseg drive bag (stretches.json next to / in it, or metadata)."""
    bag = Path(bag)
    folder = bag if bag.is_dir() else bag.parent
    for path in (folder / STRETCHES_FILE, folder.parent / STRETCHES_FILE):
        if path.is_file():
            return json.loads(path.read_text())['stretches']
    meta = folder / 'metadata.yaml'
    if meta.is_file():
        custom = (yaml.safe_load(meta.read_text())['rosbag2_bagfile_information'].get('custom_data') or {})
        if STRETCHES_KEY in custom:
            return json.loads(custom[STRETCHES_KEY])['stretches']
    return None


def image_msg(typestore, header, array: np.ndarray, encoding: str):
    """Build a rosbags sensor_msgs/Image with the codec's `fill_image` (rosbags wants a uint8 array)."""
    f = fill_image(SimpleNamespace(), array, encoding)
    return typestore.types[IMAGE](header=header, height=f.height, width=f.width, encoding=f.encoding,
                                  is_bigendian=f.is_bigendian, step=f.step,
                                  data=np.frombuffer(f.data, np.uint8))


def output_topics(image_topic: str) -> dict[str, str]:
    """Return the output topics next to an image topic: /cam/image_raw -> /cam/segmentation/{mask,...}."""
    ns = image_topic.rstrip('/').rsplit('/', 1)[0]
    return {k: f'{ns}/segmentation/{k}' for k in ('mask', 'confidence', 'color')}


class BagRecorder:
    """Writes CDR messages into a new MCAP rosbag2, one connection per topic (created on first use)."""

    def __init__(self, path: str | Path):
        if Path(path).exists():
            raise FileExistsError(f'output bag exists already, not overwriting: {path}')
        self.writer = Writer(Path(path), version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.typestore, self.conns = get_typestore(Stores.ROS2_KILTED), {}

    def write(self, topic: str, msgtype: str, log_ns: int, payload: bytes) -> None:
        """Write one serialised message at log time `log_ns`."""
        if topic not in self.conns:
            self.conns[topic] = self.writer.add_connection(topic, msgtype, typestore=self.typestore)
        self.writer.write(self.conns[topic], log_ns, payload)

    def close(self) -> None:
        """Finish the bag (writes its metadata)."""
        self.writer.close()

    def __enter__(self) -> 'BagRecorder':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
