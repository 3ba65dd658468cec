"""The node's parameters: one typed dataclass, their declaration and their validation."""
from __future__ import annotations

import dataclasses
import posixpath
import re
from dataclasses import dataclass, field

from camseg_core.config import (DEFAULT_EXPOSURE_FLOOR, PRECISION_NAMES as PRECISIONS, RUNTIMES,
                                SAMPLER_PROFILES, SamplerConfig, apply_profile, check_exposure_floor)

SAMPLER_PARAMS = ('num_iter', 'steps', 'scheduler', 'temperature', 'ensemble', 'seed')
# The value of each sampler parameter that means "the profile's, else the checkpoint's" (seed: -1 already
# means a fresh seed per frame, so -2).
FROM_CHECKPOINT = {'num_iter': -1, 'steps': -1, 'scheduler': '', 'temperature': -1.0, 'ensemble': -1,
                   'seed': -2}
FRESH_SEED = -1
# Changeable while the node runs (`ros2 param set`); the others apply on the next configure.
RUNTIME_PARAMS = ('profile',) + SAMPLER_PARAMS + (
    'exposure_floor', 'confidence_threshold', 'max_wait_ms', 'stamp_offset_warn_ms', 'mono16_bits',
    'output_resolution', 'publish_color', 'publish_overlay', 'overlay_alpha')
QOS_CHOICES = ('sensor_data', 'reliable', 'system_default')
RESOLUTIONS = ('input', 'processing')
TRANSPORTS = ('raw', 'compressed')
_DEVICE = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')
_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$')


@dataclass
class NodeSettings:
    """Every parameter of `segment_node` with its default (see config/segment.yaml)."""

    checkpoint: str = ''  # checkpoint directory; '' -> the demo model, where one is installed
    device: str = 'auto'  # auto, cpu, cuda or cuda:N
    precision: str = 'fp32'  # fp32, fp16 or bf16 (autocast)
    runtime: str = 'torch'  # torch or onnxruntime (an ONNX export beside the checkpoint)
    # The sampler: the checkpoint's, changed by the profile, changed by each parameter not at FROM_CHECKPOINT.
    profile: str = 'checkpoint'  # camseg_core SAMPLER_PROFILES: checkpoint (no change) or fast (run time)
    num_iter: int = -1  # MAR iterations; -1: the profile's / checkpoint's (run time)
    steps: int = -1  # diffusion steps per token; -1: the profile's / checkpoint's (run time)
    scheduler: str = ''  # ddpm or ddim; '': the profile's / checkpoint's (run time)
    temperature: float = -1.0  # sampling noise scale; -1: the profile's / checkpoint's (run time)
    ensemble: int = -1  # samples per frame, majority vote; -1: the profile's / checkpoint's (run time)
    seed: int = -2  # sampler seed; -1: a fresh one per frame; -2: the checkpoint's (run time)
    exposure_floor: float = DEFAULT_EXPOSURE_FLOOR  # brighten darker frames (mean 0..1) to it; 0: off
    confidence_threshold: float = 0.0  # mask pixels below this confidence are 255 (run time)
    max_wait_ms: float = 500.0  # drop frames that waited longer in the node (receipt -> inference); 0: never
    stamp_offset_warn_ms: float = 1000.0  # warn when clock - header stamp exceeds this (or is negative)
    mono16_bits: int = 16  # significant bits of 16-bit images (12-bit camera: 12); 0: each frame's range
    input_transport: str = 'raw'  # raw: <cam>/image (Image); compressed: <cam>/image/compressed (JPEG/PNG)
    qos: str = 'sensor_data'  # input QoS: sensor_data (best effort, last 1), reliable, system_default
    camera_info: bool = True  # subscribe <cam>/camera_info, republish it as <cam>/segmentation/camera_info
    output_resolution: str = 'input'  # input: outputs at the input size; processing: at the model's size
    output_qos: str = 'reliable'  # output QoS: reliable (keep last 2), sensor_data or system_default
    publish_color: bool = True  # colour mask, computed only while subscribed (run time)
    publish_overlay: bool = True  # colour blended over the input, only while subscribed (run time)
    overlay_alpha: float = 0.5  # weight of the colour mask in the overlay (run time)
    max_input_pixels: int = 3840 * 2160  # larger inputs are rejected as bad input
    cameras: list[str] = field(default_factory=list)  # e.g. [cam_front, cam_left]; []: one camera on `image`
    autostart: bool = True  # configure and activate on start (else wait for lifecycle transitions)

    def sampler(self, checkpoint: SamplerConfig) -> SamplerConfig:
        """Return the sampler these settings select, given the checkpoint's (not validated)."""
        chosen = apply_profile(checkpoint, self.profile)
        given = {name: getattr(self, name) for name in SAMPLER_PARAMS
                 if getattr(self, name) != FROM_CHECKPOINT[name]}
        if given.get('seed') == FRESH_SEED:
            given['seed'] = None
        return dataclasses.replace(chosen, **given)

    def sampler_kwargs(self, checkpoint: SamplerConfig) -> dict:
        """Return the selected sampler as `Segmenter.set_sampler` keywords."""
        chosen = self.sampler(checkpoint)
        return {name: getattr(chosen, name) for name in SAMPLER_PARAMS}


def _refusal(check, *args) -> str | None:
    """Return the message of the ValueError or TypeError that `check(*args)` raises (None: it passed)."""
    try:
        check(*args)
    except (ValueError, TypeError) as e:
        return str(e)
    return None


def _check_sampler(name: str, value, settings: NodeSettings, checkpoint: SamplerConfig | None) -> str | None:
    """Run the sampler's own check on the settings with this value (checkpoint None: SamplerConfig())."""
    if name == 'profile' and value not in SAMPLER_PROFILES:
        return f'profile must be one of {tuple(SAMPLER_PROFILES)}, got {value!r}'
    if name == 'seed' and value < FROM_CHECKPOINT['seed']:
        return f'seed must be >= 0, {FRESH_SEED} (a fresh seed per frame) or -2 (the checkpoint\'s), ' \
               f'got {value}'
    candidate = dataclasses.replace(settings, **{name: value})
    reason = _refusal(lambda: candidate.sampler(checkpoint or SamplerConfig()).validate())
    if reason and name in FROM_CHECKPOINT:
        reason += f' ({name} {FROM_CHECKPOINT[name]!r} keeps the profile\'s / checkpoint\'s value)'
    return reason


def check_value(name: str, value, settings: NodeSettings,
                checkpoint: SamplerConfig | None = None) -> str | None:
    """Return why `value` is invalid for parameter `name` given the other `settings` (None: valid).

    Sampler parameters are checked on the sampler they select from `checkpoint`'s (None: before a checkpoint
    is loaded, SamplerConfig's defaults stand in).
    """
    if name in SAMPLER_PARAMS or name == 'profile':
        return _check_sampler(name, value, settings, checkpoint)
    if name == 'exposure_floor':  # the Segmenter's own check
        return _refusal(check_exposure_floor, value)
    checks = {
        'device': (lambda v: bool(_DEVICE.match(v)), 'must be auto, cpu, cuda or cuda:N'),
        'precision': (lambda v: v in PRECISIONS, f'must be one of {PRECISIONS}'),
        'runtime': (lambda v: v in RUNTIMES, f'must be one of {RUNTIMES}'),
        'confidence_threshold': (lambda v: 0.0 <= v <= 1.0, 'must be in [0, 1]'),
        'max_wait_ms': (lambda v: v >= 0.0, 'must be >= 0 (0 disables the limit)'),
        'stamp_offset_warn_ms': (lambda v: v > 0.0, 'must be > 0'),
        'mono16_bits': (lambda v: 0 <= v <= 16, 'must be 0 (the data range) or 1..16 bits'),
        'input_transport': (lambda v: v in TRANSPORTS, f'must be one of {TRANSPORTS}'),
        'qos': (lambda v: v in QOS_CHOICES, f'must be one of {QOS_CHOICES}'),
        'output_qos': (lambda v: v in QOS_CHOICES, f'must be one of {QOS_CHOICES}'),
        'output_resolution': (lambda v: v in RESOLUTIONS, f'must be one of {RESOLUTIONS}'),
        'overlay_alpha': (lambda v: 0.0 <= v <= 1.0, 'must be in [0, 1]'),
        'max_input_pixels': (lambda v: v > 0, 'must be positive'),
        'cameras': (lambda v: all(_NAME.match(c) for c in v) and len(set(v)) == len(v),
                    'must be distinct relative topic names like cam_front'),
    }
    if name in checks and not checks[name][0](value):
        return f'{name} {checks[name][1]}, got {value!r}'
    return None


def check_all(settings: NodeSettings) -> list[str]:
    """Every problem with a full set of settings (empty list: all valid)."""
    names = [f.name for f in dataclasses.fields(settings)]
    problems = (check_value(name, getattr(settings, name), settings) for name in names)
    return [p for p in problems if p]


def declare(node) -> NodeSettings:
    """Declare every parameter on an rclpy node (defaults from NodeSettings) and read their values."""
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.parameter import Parameter

    settings = NodeSettings()
    for f in dataclasses.fields(settings):
        default = getattr(settings, f.name)
        when = 'changeable at run time' if f.name in RUNTIME_PARAMS else 'applies on configure'
        # Floats also accept integers (`-p overlay_alpha:=1`): typed by `coerce`, not by rclpy.
        descriptor = ParameterDescriptor(description=f'default {default!r}; {when}',
                                         dynamic_typing=isinstance(default, float))
        if f.name == 'cameras':  # an empty list has no type of its own in ROS
            value = node.declare_parameter(f.name, Parameter.Type.STRING_ARRAY, descriptor).value
        else:
            value = node.declare_parameter(f.name, default, descriptor).value
        setattr(settings, f.name, coerce(f.name, value))
    return settings


def coerce(name: str, value):
    """Bring a parameter value to its field's type (int -> float, None -> []); ValueError if impossible."""
    if name == 'cameras':
        return list(value or [])
    default = getattr(NodeSettings(), name)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f'{name} must be a number, got {value!r}')
        return float(value)
    if type(value) is not type(default):
        raise ValueError(f'{name} must be of type {type(default).__name__}, got {value!r}')
    return value


def camera_info_topic(image_topic: str) -> str:
    """Return the camera_info topic beside an image topic: /camera/image_raw -> /camera/camera_info."""
    return posixpath.join(posixpath.dirname(image_topic), 'camera_info')


def camera_remappings(image: str, camera_topics: str = '') -> tuple[list[str], list[tuple[str, str]]]:
    """Return the `cameras` parameter and the topic remappings for a launch file.

    `image` is the input topic of a single camera; `camera_topics` ('cam_front=/front/image_raw,
    cam_left=/left/image_raw') lists several, which replaces `image`. Both the raw and the
    `/compressed` topic are remapped, so either input_transport works, and camera_info to the one beside
    each image topic (camera_info_topic).
    """
    pairs = [item.split('=', 1) for item in camera_topics.replace(' ', '').split(',') if item]
    if any(len(p) != 2 or not p[0] or not p[1] for p in pairs):
        raise ValueError(f'camera_topics must look like "cam_front=/front/image_raw,cam_left=/left/image", '
                         f'got {camera_topics!r}')
    if not pairs:
        pairs, cameras = [('', image)], []
    else:
        cameras = [name for name, _ in pairs]
        reason = check_value('cameras', cameras, NodeSettings())
        if reason:
            raise ValueError(reason)
    remaps = []
    for name, target in pairs:
        prefix = f'{name}/' if name else ''
        remaps += [(f'{prefix}image', target), (f'{prefix}image/compressed', f'{target}/compressed'),
                   (f'{prefix}camera_info', camera_info_topic(target))]
    return cameras, remaps


def remap_arguments(remaps: list[tuple[str, str]]) -> list[str]:
    """Return `-r from:=to` command-line arguments for a list of remappings."""
    return [arg for source, target in remaps for arg in ('-r', f'{source}:={target}')]
