"""`segment_node`: a lifecycle node that segments camera images with `camseg_core.api.Segmenter`.

Subscriptions only store the newest frame of each camera with its receipt time; one worker thread (the one
that makes every torch call) batches the newest frames of all cameras into one `segment()` call and
publishes, with the input header, each output that someone subscribes to (mask, confidence, colour, overlay,
camera_info). Staleness is the time a frame waited inside the node, so recorded stamps, unsynchronised cameras
and sim time all work. Run it with
`segment_node --ros-args --params-file config/segment.yaml -r image:=/camera/image_raw`.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
import copy
import dataclasses
import json
import sys
import threading
import time

import numpy as np
import rclpy
import torch
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header, String

from camseg_core.api import Segmenter, load_segmenter
from camseg_core.config import SamplerConfig
from camseg_core.labels import labels_as_dicts
from camseg_ros import cdr, params
from camseg_ros.diagnostics import PipelineStats, to_diagnostic_array
from camseg_ros.image_codec import compressed_to_rgb, image_to_rgb, stamp_ns
from camseg_ros.outputs import ENCODINGS, render, scale_camera_info, to_processing_resolution
from camseg_ros.qos import OUTPUT_DEPTH, qos_profile

OUTPUTS = tuple(ENCODINGS)  # mask, confidence, color, overlay
WARN_PERIOD_S = 5.0  # throttle of repeated warnings
DIAGNOSTICS_PERIOD_S = 1.0  # on the steady clock: diagnostics go on while sim time stands still
NEGATIVE_OFFSET_TOLERANCE_MS = 10.0  # stamps this far ahead of the node clock are reported
LABELS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)


def read_image(serialised: bytes):
    """Read a raw Image subscription's bytes: in place (cdr.parse_image), or with rclpy for other layouts."""
    try:
        return cdr.parse_image(serialised)
    except ValueError:
        return deserialize_message(serialised, Image)


def ros_header(header) -> Header:
    """Return a std_msgs/Header of anything with stamp.sec, stamp.nanosec and frame_id."""
    if isinstance(header, Header):
        return header
    return Header(stamp=Time(sec=int(header.stamp.sec), nanosec=int(header.stamp.nanosec)),
                  frame_id=str(header.frame_id))


def timed(function, *args):
    """Call `function(*args)`; returns (its result, the seconds it took)."""
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def topic(camera: str, name: str) -> str:
    """Return a relative topic name under a camera's prefix ('' = no prefix)."""
    return f'{camera}/{name}' if camera else name


class SegmentNode(LifecycleNode):
    """Lifecycle node: configure loads the model, activate subscribes, deactivate frees the GPU."""

    def __init__(self, node_name: str = 'camseg', **kwargs):
        super().__init__(node_name, **kwargs)
        self.settings = params.declare(self)
        self.stats = PipelineStats()
        self.seg: Segmenter | None = None
        self._checkpoint_sampler: SamplerConfig | None = None  # the loaded checkpoint's own sampler
        self.transition_error = ''  # why the last configure or activate failed
        self._cameras: list[str] = []
        self._pubs: dict[str, dict] = {}  # camera -> output name (and 'camera_info') -> publisher
        self._subs = []
        self._slots: dict[str, tuple] = {}  # camera -> (msg, monotonic receipt ns): the newest frame only
        self._camera_info: dict[str, CameraInfo] = {}  # camera -> its newest CameraInfo
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._worker: Future | None = None  # the inference loop of the active generation, on the torch thread
        # Each activation and deactivation starts a generation; results of an older one are never published.
        self._generation = 0
        self._publish_lock = threading.Lock()
        self._labels_pub = self._diag_pub = self._diag_timer = None
        # Every torch call (model load, inference, release) runs on this one thread: on a small CPU, torch
        # work split over two threads (load on the executor thread, inference on a worker) ran ~1.8x slower.
        # While active, the inference loop itself runs there: no hand-off to another thread per frame.
        self._torch = ThreadPoolExecutor(max_workers=1, thread_name_prefix='camseg-torch')
        self._last_warning: dict[str, float] = {}  # kind of problem -> time of its last warning
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # ---- lifecycle ----
    def on_configure(self, state) -> TransitionCallbackReturn:
        """Validate the parameters, load the model, create the publishers and publish the labels."""
        problems = params.check_all(self.settings)
        try:
            if problems:
                raise ValueError('; '.join(problems))
            s = self.settings
            self.seg = self._torch.submit(
                load_segmenter, s.checkpoint, device=s.device, precision=s.precision, runtime=s.runtime,
                max_pixels=s.max_input_pixels, exposure_floor=s.exposure_floor).result()
            self._checkpoint_sampler = self.seg.sampler  # what the parameters at FROM_CHECKPOINT keep
            self.seg.set_sampler(**s.sampler_kwargs(self._checkpoint_sampler))
        except Exception as e:  # any load failure leaves the node unconfigured, with the cause logged
            self._release()
            return self._fail('configure', e)
        self.transition_error = ''
        self._cameras = list(self.settings.cameras) or ['']
        qos = qos_profile(self.settings.output_qos, reliable_depth=OUTPUT_DEPTH)
        self._pubs = {cam: {out: self.create_publisher(Image, topic(cam, f'segmentation/{out}'), qos)
                            for out in OUTPUTS} for cam in self._cameras}
        if self.settings.camera_info:
            for cam in self._cameras:
                self._pubs[cam]['camera_info'] = self.create_publisher(
                    CameraInfo, topic(cam, 'segmentation/camera_info'), qos)
        self._labels_pub = self.create_publisher(String, 'segmentation/labels', LABELS_QOS)
        self._labels_pub.publish(String(data=json.dumps(labels_as_dicts())))
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics,
                                             clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f'model {self.seg.name} on {self.seg.device} ({self.seg.precision}), '
                               f'cameras {self._cameras}, sampler {self.seg.sampler}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        """Run one warm-up inference, subscribe to every camera and start the inference worker."""
        try:  # first-call allocations happen here, and a model that cannot run fails here, not on frame 1
            blank = np.zeros((*self.seg.config.image_size, 3), np.uint8)  # (H, W, 3) at the processing size
            self._torch.submit(self.seg.segment, blank).result()
        except Exception as e:
            return self._fail('activate', e)
        compressed = self.settings.input_transport == 'compressed'
        kind, name = (CompressedImage, 'image/compressed') if compressed else (Image, 'image')
        qos = qos_profile(self.settings.qos)
        # Raw images arrive as their serialised bytes and are read in place (cdr.parse_image): rclpy's own
        # deserialisation copies the pixels into Python objects, milliseconds per HD frame on a small CPU.
        self._subs = [self.create_subscription(kind, topic(cam, name),
                                               lambda msg, c=cam: self._on_frame(c, msg), qos,
                                               raw=not compressed)
                      for cam in self._cameras]
        if self.settings.camera_info:
            self._subs += [self.create_subscription(CameraInfo, topic(cam, 'camera_info'),
                                                    lambda msg, c=cam: self._camera_info.__setitem__(c, msg),
                                                    qos_profile('sensor_data'))
                           for cam in self._cameras]
        with self._publish_lock:
            self._generation += 1
            generation = self._generation
        self._stop = threading.Event()
        self._worker = self._torch.submit(self._work, generation, self._stop)
        self.get_logger().info(f'active: listening on {[s.topic_name for s in self._subs]}')
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        """Unsubscribe and stop the worker without waiting for a running inference; free cached GPU memory.

        An inference still running finishes on the torch thread, but its results are not published.
        """
        with self._publish_lock:  # waits for at most one frame's publish calls
            self._generation += 1
        self._stop_worker(wait=False)
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs, self._camera_info = [], {}
        if self.seg is not None and self.seg.device.type == 'cuda':
            self._torch.submit(torch.cuda.empty_cache)  # after a running inference, without waiting
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        """Drop the publishers and unload the model."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        """Stop everything from any state."""
        self.on_deactivate(state)
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state) -> TransitionCallbackReturn:
        """Recover to unconfigured."""
        return self.on_shutdown(state)

    def _fail(self, transition: str, error: Exception) -> TransitionCallbackReturn:
        self.transition_error = f'{transition} failed: {type(error).__name__}: {error}'
        self.get_logger().error(self.transition_error)
        return TransitionCallbackReturn.FAILURE

    def _release(self) -> None:
        for pubs in self._pubs.values():
            for pub in pubs.values():
                self.destroy_publisher(pub)
        for pub in (self._labels_pub, self._diag_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
        self._pubs, self._labels_pub, self._diag_pub, self._diag_timer = {}, None, None, None
        if self.seg is not None:
            self._torch.submit(self.seg.close).result()
            self.seg = None

    def destroy_node(self) -> None:
        """Stop the worker thread before the node goes away."""
        self._stop_worker(wait=True)
        self._torch.shutdown(wait=True)
        super().destroy_node()

    def _stop_worker(self, wait: bool) -> None:
        self._stop.set()
        with self._cond:
            self._slots.clear()
            self._cond.notify_all()
        if wait and self._worker is not None:
            self._worker.result()
        self._worker = None

    # ---- parameters ----
    def _on_set_parameters(self, changes) -> SetParametersResult:
        """Apply run-time changes; an invalid value is rejected with a reason and the old one kept."""
        new = dataclasses.replace(self.settings)
        fields = {f.name for f in dataclasses.fields(new)}
        try:
            for p in changes:
                if p.name not in fields:
                    continue
                if p.name not in params.RUNTIME_PARAMS and self.seg is not None:
                    raise ValueError(f'{p.name} applies on configure: deactivate and clean up the node first')
                value = params.coerce(p.name, p.value)
                reason = params.check_value(p.name, value, new, self._checkpoint_sampler)
                if reason:
                    raise ValueError(reason)
                setattr(new, p.name, value)
            if self.seg is not None:
                chosen = new.sampler_kwargs(self._checkpoint_sampler)
                if chosen != self.settings.sampler_kwargs(self._checkpoint_sampler):
                    self.seg.set_sampler(**chosen)
            if self.seg is not None:
                self.seg.exposure_floor = new.exposure_floor  # a float: the worker reads it per batch
        except ValueError as e:
            return SetParametersResult(successful=False, reason=str(e))
        self.settings = new
        return SetParametersResult(successful=True)

    # ---- data path ----
    def _on_frame(self, camera: str, msg) -> None:
        """Keep only the newest frame of each camera with its receipt time; the worker takes it when free."""
        received = time.monotonic_ns()
        self.stats.count('received')
        if isinstance(msg, bytes):  # a raw Image subscription
            try:
                msg = read_image(msg)
            except Exception as e:  # e.g. bytes cut short: rclpy's deserialisation failed too
                self.stats.count('dropped_bad_input')
                self._warn('bad_input', f'{camera or "image"}: undecodable Image dropped: {e}')
                return
        stamp = stamp_ns(msg.header)
        if stamp:  # for reporting only: never used to drop frames
            offset_ms = (self.get_clock().now().nanoseconds - stamp) / 1e6
            self.stats.add_sample('stamp_offset_ms', offset_ms)
            self._check_offset(camera, offset_ms)
        with self._cond:
            if camera in self._slots:
                self.stats.count('replaced')
            self._slots[camera] = (msg, received)
            self._cond.notify()

    def _check_offset(self, camera: str, offset_ms: float) -> None:
        name = camera or 'image'
        if offset_ms > self.settings.stamp_offset_warn_ms:
            self._warn('stamps_behind', f'{name}: header stamps are {offset_ms:.0f} ms behind the node clock '
                       '(recorded data, a camera clock not synchronised, or use_sim_time without /clock?); '
                       'frames are still processed: staleness is measured from their receipt')
        elif offset_ms < -NEGATIVE_OFFSET_TOLERANCE_MS:
            self._warn('stamps_ahead', f'{name}: header stamps are {-offset_ms:.0f} ms ahead of the node '
                       'clock (use_sim_time without /clock, or clocks not synchronised?)')

    def _work(self, generation: int, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._slots or stop.is_set(), timeout=0.5)
                if stop.is_set():
                    return
                frames, self._slots = self._slots, {}
            if frames:
                try:
                    self._process(frames, generation)
                except Exception as e:  # e.g. publishing while the context shuts down: keep the worker alive
                    self.stats.count('dropped_errors', len(frames))
                    self._warn('error', f'frame processing failed: {type(e).__name__}: {e}')

    def _process(self, frames: dict[str, tuple], generation: int) -> None:
        s, seg = self.settings, self.seg
        now = time.monotonic_ns()
        batch = []  # (camera, header, rgb, receipt ns, input (width, height), wanted outputs)
        for camera, (msg, received) in sorted(frames.items()):
            wait_ms = (now - received) / 1e6
            self.stats.add_sample('wait_ms', wait_ms)
            if s.max_wait_ms > 0 and wait_ms > s.max_wait_ms:
                self.stats.count('dropped_stale')
                self._warn('stale', f'{camera or "image"}: dropped a frame that waited {wait_ms:.0f} ms '
                           f'in the node (max_wait_ms={s.max_wait_ms:g})')
                continue
            wanted = self._wanted(camera)
            if not wanted:
                self.stats.count('unsubscribed')
                continue
            decode_start = time.perf_counter()
            try:
                if isinstance(msg, CompressedImage):
                    rgb = compressed_to_rgb(msg, s.max_input_pixels)
                else:
                    rgb = image_to_rgb(msg, s.max_input_pixels, s.mono16_bits)
            except ValueError as e:
                self.stats.count('dropped_bad_input')
                self._warn('bad_input', f'{camera or "image"}: bad input dropped: {e}')
                continue
            size = (rgb.shape[1], rgb.shape[0])
            if s.output_resolution == 'processing':
                rgb = to_processing_resolution(rgb, seg.config.image_size)
            self.stats.add_sample('decode_ms', (time.perf_counter() - decode_start) * 1e3)
            batch.append((camera, msg.header, rgb, received, size, wanted))
        if not batch:
            return
        start = time.perf_counter()
        try:
            results, seconds = timed(seg.segment, [item[2] for item in batch])  # on the torch thread
        except torch.cuda.OutOfMemoryError:
            self.stats.count('dropped_errors', len(batch))
            torch.cuda.empty_cache()
            self._warn('oom', f'CUDA out of memory: dropped {len(batch)} frame(s)')
            return
        except ValueError as e:
            self.stats.count('dropped_bad_input', len(batch))
            self._warn('bad_input', f'bad input dropped: {e}')
            return
        except Exception as e:  # a failed frame never kills the node
            self.stats.count('dropped_errors', len(batch))
            self._warn('error', f'segmentation failed: {type(e).__name__}: {e}')
            return
        stages = {'processing_ms': (time.perf_counter() - start) * 1e3, 'segment_ms': seconds * 1e3}
        for item, result in zip(batch, results):
            self._publish(generation, *item, result, stages)

    def _wanted(self, camera: str) -> set[str]:
        """Return the outputs of a camera that are enabled and subscribed (camera_info included)."""
        s, pubs = self.settings, self._pubs[camera]
        enabled = {'color': s.publish_color, 'overlay': s.publish_overlay,
                   'camera_info': camera in self._camera_info}
        return {name for name, pub in pubs.items()
                if enabled.get(name, True) and pub.get_subscription_count() > 0}

    def _publish(self, generation: int, camera: str, header, rgb: np.ndarray, received: int, size, wanted,
                 result, stages: dict[str, float]) -> None:
        """Render, serialise and publish one frame's outputs; record its stages if it was published."""
        s, pubs = self.settings, self._pubs[camera]
        start = time.perf_counter()
        arrays = render(wanted, result.labels, result.confidence, rgb, s.confidence_threshold,
                        s.overlay_alpha)
        # Serialised here, pixels copied once (rclpy would copy them into an array.array, then into C).
        messages = {name: cdr.image_bytes(header, array, ENCODINGS[name]) for name, array in arrays.items()}
        if 'camera_info' in wanted:
            info = copy.deepcopy(self._camera_info[camera])
            info.header = ros_header(header)
            messages['camera_info'] = scale_camera_info(info, rgb.shape[1], rgb.shape[0], *size)
        outputs_ms = (time.perf_counter() - start) * 1e3
        with self._publish_lock:
            if generation != self._generation:  # deactivated meanwhile
                self.stats.count('dropped_inactive')
                return
            start = time.perf_counter()
            for name, msg in messages.items():
                pubs[name].publish(msg)
            publish_ms = (time.perf_counter() - start) * 1e3
        self.stats.count('published')
        self.stats.add_samples(dict(stages, outputs_ms=outputs_ms, publish_ms=publish_ms,
                                    in_node_ms=(time.monotonic_ns() - received) / 1e6))

    def _warn(self, kind: str, text: str) -> None:
        """Log a warning at most once per WARN_PERIOD_S for each kind of problem."""
        now = time.monotonic()
        if now - self._last_warning.get(kind, -WARN_PERIOD_S) >= WARN_PERIOD_S:
            self._last_warning[kind] = now
            self.get_logger().warning(text)

    # ---- diagnostics ----
    def _publish_diagnostics(self) -> None:
        seg, active = self.seg, self._worker is not None
        extra = {'state': 'active' if active else 'inactive',
                 'clock': 'sim' if self.get_parameter('use_sim_time').value else 'system'}
        if seg is not None:
            gpu = (f'{torch.cuda.memory_allocated(seg.device) / 2**20:.1f}' if seg.device.type == 'cuda'
                   else 'n/a')
            extra.update(device=str(seg.device), model=seg.name, precision=seg.precision,
                         gpu_memory_mb=gpu, sampler=str(seg.sampler), exposure_floor=seg.exposure_floor,
                         confidence_threshold=self.settings.confidence_threshold,
                         output_resolution=self.settings.output_resolution)
        array = to_diagnostic_array(self.stats.snapshot(), self.get_clock().now().to_msg(),
                                    f'{self.get_name()}: segmentation', self.get_fully_qualified_name(),
                                    active, extra)
        self._diag_pub.publish(array)


def main(args=None) -> int:
    """Run the node; with autostart a failed configure or activate exits with status 1 and the reason."""
    try:
        with rclpy.init(args=args):
            node = SegmentNode()
            try:
                if node.settings.autostart:
                    for step, trigger in (('configure', node.trigger_configure),
                                          ('activate', node.trigger_activate)):
                        if trigger() != TransitionCallbackReturn.SUCCESS:
                            reason = node.transition_error or f'{step} failed'
                            node.get_logger().fatal(f'cannot start: {reason}')
                            return 1
                rclpy.spin(node)
            finally:
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as e:  # e.g. a parameter of the wrong type
        print(f'segment_node: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
