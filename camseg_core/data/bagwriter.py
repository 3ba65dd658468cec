"""A synthetic sample drive written as a rosbag2 (MCAP or sqlite3) with camera images and labels.

The camera drives forward along one synthetic street (smooth motion, moving traffic) through
equal stretches of weather, by default clear, fog, snow, night. Topics, with identical header
stamps and frame_id:

- /camera/image_raw  sensor_msgs/msg/Image rgb8
- /camera/labels     sensor_msgs/msg/Image mono8, Cityscapes trainIds (255 = ignore)

The stretch time ranges are written to `<bag>/stretches.json` and, as the same JSON text, to the
bag metadata's custom_data under the key 'camseg.stretches':
{"fps", "frames", "frame_id", "topics", "stretches": [{"condition", "first_frame", "last_frame",
"start_ns", "end_ns"}]} where end_ns is the stamp of the stretch's last frame.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from camseg_core.data.synth import SceneConfig, make_layout, render_layout
from camseg_core.data.weather import apply_weather, parse_condition
from camseg_core.labels import label_ids_to_train_ids

IMAGE_TOPIC = '/camera/image_raw'
LABEL_TOPIC = '/camera/labels'
STRETCHES_FILE = 'stretches.json'
STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}


@dataclass
class DriveConfig:
    """What drive to write."""

    frames: int = 80  # total frames, a multiple of the number of stretches
    fps: float = 10.0  # frame rate of the stamps
    height: int = 256  # image size
    width: int = 512
    speed: float = 8.0  # camera speed (m/s)
    stretches: tuple[str, ...] = ('clear', 'fog', 'snow', 'night')  # condition of each equal stretch
    storage: str = 'mcap'  # 'mcap' or 'sqlite3'
    seed: int = 0
    start_ns: int = 1_700_000_000 * 10 ** 9  # stamp of the first frame
    frame_id: str = 'camera'

    def validate(self) -> DriveConfig:
        """Raise ValueError naming the first bad field; return self."""
        if self.storage not in STORAGES:
            raise ValueError(f'storage must be one of {sorted(STORAGES)}, got {self.storage!r}')
        if not self.stretches:
            raise ValueError('need at least one stretch')
        for name in self.stretches:
            parse_condition(name)
        if self.frames < len(self.stretches) or self.frames % len(self.stretches):
            raise ValueError(f'frames ({self.frames}) must be a positive multiple of the number of stretches '
                             f'({len(self.stretches)})')
        if self.fps <= 0 or self.speed < 0:
            raise ValueError(f'need fps > 0 and speed >= 0, got fps={self.fps}, speed={self.speed}')
        SceneConfig(self.height, self.width).validate()
        return self


def _image_msg(typestore, stamp_ns: int, frame_id: str, array: np.ndarray, encoding: str):
    T = typestore.types
    h, w = array.shape[:2]
    header = T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](
        sec=stamp_ns // 10 ** 9, nanosec=stamp_ns % 10 ** 9), frame_id=frame_id)
    return T['sensor_msgs/msg/Image'](header=header, height=h, width=w, encoding=encoding, is_bigendian=0,
                                      step=array.strides[0], data=np.ascontiguousarray(array).reshape(-1))


def write_drive_bag(path: str | Path, config: DriveConfig | None = None, progress: bool = True) -> dict:
    """Render the drive and write it as a rosbag2 directory at `path` (must not exist).

    Returns the stretches information also written to `<path>/stretches.json`.
    """
    cfg = (config or DriveConfig()).validate()
    path = Path(path)
    if path.exists():
        raise FileExistsError(f'bag path exists already, not overwriting: {path}')
    ts = get_typestore(Stores.ROS2_KILTED)
    dt_ns = int(round(1e9 / cfg.fps))
    per = cfg.frames // len(cfg.stretches)
    layout = make_layout(np.random.default_rng([cfg.seed, 0]), SceneConfig(cfg.height, cfg.width),
                         length=cfg.speed * cfg.frames / cfg.fps, speed=cfg.speed)
    info = dict(fps=cfg.fps, frames=cfg.frames, frame_id=cfg.frame_id,
                topics={IMAGE_TOPIC: 'sensor_msgs/msg/Image rgb8',
                        LABEL_TOPIC: 'sensor_msgs/msg/Image mono8 trainIds'},
                stretches=[dict(condition=c, first_frame=k * per, last_frame=(k + 1) * per - 1,
                                start_ns=cfg.start_ns + k * per * dt_ns,
                                end_ns=cfg.start_ns + ((k + 1) * per - 1) * dt_ns)
                           for k, c in enumerate(cfg.stretches)])
    with Writer(path, version=9, storage_plugin=STORAGES[cfg.storage]) as writer:
        conns = {t: writer.add_connection(t, 'sensor_msgs/msg/Image', typestore=ts)
                 for t in (IMAGE_TOPIC, LABEL_TOPIC)}
        for i in tqdm(range(cfg.frames), desc=f'drive -> {path.name}', disable=not progress):
            condition = cfg.stretches[i // per]
            scene = render_layout(layout, i / cfg.fps, np.random.default_rng([cfg.seed, 1, i]))
            weather_rng = np.random.default_rng([cfg.seed, 2, i, zlib.crc32(condition.encode())])
            image = apply_weather(scene, condition, weather_rng)
            stamp = cfg.start_ns + i * dt_ns
            for topic, array, enc in ((IMAGE_TOPIC, image, 'rgb8'),
                                      (LABEL_TOPIC, label_ids_to_train_ids(scene.label_ids), 'mono8')):
                msg = _image_msg(ts, stamp, cfg.frame_id, array, enc)
                writer.write(conns[topic], stamp, ts.serialize_cdr(msg, 'sensor_msgs/msg/Image'))
        writer.set_custom_data('camseg.stretches', json.dumps(info))
    (path / STRETCHES_FILE).write_text(json.dumps(info, indent=2) + '\n')
    return info
