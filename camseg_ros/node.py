"""`segment_node`: a lifecycle node that segments camera images with `camseg_core.api.Segmenter`.

Subscriptions only store the newest frame of each camera; one worker thread batches the newest
frames of all cameras into one `segment()` call and publishes mask, confidence, colour and overlay
with the input header. Run it with
`segment_node --ros-args --params-file config/segment.yaml -r image:=/camera/image_raw`.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import dataclasses
import json
import sys
import threading
import time

import cv2
import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_system_default)
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from camseg_core.api import Segmenter
from camseg_core.assets import resolve_checkpoint
from camseg_core.labels import IGNORE_INDEX, colorize, labels_as_dicts
from camseg_ros import params
from camseg_ros.diagnostics import PipelineStats, to_diagnostic_array
from camseg_ros.image_codec import compressed_to_rgb, fill_image, image_to_rgb, stamp_ns

OUTPUTS = ('mask', 'confidence', 'color', 'overlay')
WARN_PERIOD_S = 5.0  # throttle of repeated warnings
OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
LABELS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)


def input_qos(name: str) -> QoSProfile:
    """Return the input QoS for a `qos` parameter value: sensor_data is best effort, keep last 1."""
    if name == 'sensor_data':
        return QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
    if name == 'reliable':
        return QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
    return qos_profile_system_default


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
        self.configure_error = ''
        self._cameras: list[str] = []
        self._pubs: dict[str, dict] = {}  # camera -> output name -> publisher
        self._subs = []
        self._slots: dict[str, tuple] = {}  # camera -> (msg, receipt time ns): the newest frame only
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._labels_pub = self._diag_pub = self._diag_timer = None
        # Every torch call (model load, inference, release) runs on this one thread: on a small CPU, torch
        # work split over two threads (load on the executor thread, inference on a worker) ran ~1.8x slower.
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
                Segmenter.from_pretrained, resolve_checkpoint(s.checkpoint), device=s.device,
                precision=s.precision, max_pixels=s.max_input_pixels, **s.sampler_kwargs()).result()
        except Exception as e:  # any load failure leaves the node unconfigured, with the cause logged
            self.configure_error = f'{type(e).__name__}: {e}'
            self.get_logger().error(f'configure failed: {self.configure_error}')
            return TransitionCallbackReturn.FAILURE
        self.configure_error = ''
        self._cameras = list(self.settings.cameras) or ['']
        self._pubs = {cam: {out: self.create_publisher(Image, topic(cam, f'segmentation/{out}'), OUTPUT_QOS)
                            for out in OUTPUTS} for cam in self._cameras}
        self._labels_pub = self.create_publisher(String, 'segmentation/labels', LABELS_QOS)
        self._labels_pub.publish(String(data=json.dumps(labels_as_dicts())))
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f'model {self.seg.name} on {self.seg.device} ({self.seg.precision}), '
                               f'cameras {self._cameras}, sampler {self.seg.sampler}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        """Subscribe to every camera and start the inference worker."""
        compressed = self.settings.input_transport == 'compressed'
        kind, name = (CompressedImage, 'image/compressed') if compressed else (Image, 'image')
        qos = input_qos(self.settings.qos)
        self._subs = [self.create_subscription(kind, topic(cam, name),
                                               lambda msg, c=cam: self._on_frame(c, msg), qos)
                      for cam in self._cameras]
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name='camseg-inference', daemon=True)
        self._worker.start()
        self.get_logger().info(f'active: listening on {[s.topic_name for s in self._subs]}')
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        """Unsubscribe, stop the worker and release cached GPU memory."""
        self._stop_worker()
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self.seg is not None and self.seg.device.type == 'cuda':
            self._torch.submit(torch.cuda.empty_cache).result()
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
        self._stop_worker()
        self._torch.shutdown(wait=True)
        super().destroy_node()

    def _stop_worker(self) -> None:
        self._stop.set()
        with self._cond:
            self._slots.clear()
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join()
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
                reason = params.check_value(p.name, value, new)
                if reason:
                    raise ValueError(reason)
                setattr(new, p.name, value)
            if self.seg is not None and new.sampler_kwargs() != self.settings.sampler_kwargs():
                self.seg.set_sampler(**new.sampler_kwargs())
        except ValueError as e:
            return SetParametersResult(successful=False, reason=str(e))
        self.settings = new
        return SetParametersResult(successful=True)

    # ---- data path ----
    def _on_frame(self, camera: str, msg) -> None:
        """Keep only the newest frame of each camera; the worker takes it when it is free."""
        self.stats.count('received')
        received = self.get_clock().now().nanoseconds
        with self._cond:
            if camera in self._slots:
                self.stats.count('replaced')
            self._slots[camera] = (msg, received)
            self._cond.notify()

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._slots or self._stop.is_set(), timeout=0.5)
                frames, self._slots = self._slots, {}
            if frames and not self._stop.is_set():
                try:
                    self._process(frames)
                except Exception as e:  # e.g. publishing while the context shuts down: keep the worker alive
                    self.stats.count('dropped_errors', len(frames))
                    self._warn('error', f'frame processing failed: {type(e).__name__}: {e}')

    def _process(self, frames: dict[str, tuple]) -> None:
        s = self.settings
        now = self.get_clock().now().nanoseconds
        batch = []  # (camera, header, rgb, stamp ns)
        for camera, (msg, received) in sorted(frames.items()):
            stamp = stamp_ns(msg.header) or received
            age_ms = (now - stamp) / 1e6
            if s.max_frame_age_ms > 0 and age_ms > s.max_frame_age_ms:
                self.stats.count('dropped_stale')
                self._warn('stale', f'{camera or "image"}: dropped a frame {age_ms:.0f} ms old '
                           f'(max_frame_age_ms={s.max_frame_age_ms:g})')
                continue
            try:
                decode = compressed_to_rgb if isinstance(msg, CompressedImage) else image_to_rgb
                batch.append((camera, msg.header, decode(msg, s.max_input_pixels), stamp))
            except ValueError as e:
                self.stats.count('dropped_bad_input')
                self._warn('bad_input', f'{camera or "image"}: bad input dropped: {e}')
        if not batch:
            return
        start = time.perf_counter()
        try:
            results = self._torch.submit(self.seg.segment, [rgb for _, _, rgb, _ in batch]).result()
        except torch.cuda.OutOfMemoryError:
            self.stats.count('dropped_errors', len(batch))
            self._torch.submit(torch.cuda.empty_cache).result()
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
        self.stats.add_sample('processing_ms', (time.perf_counter() - start) * 1e3)
        for (camera, header, rgb, stamp), result in zip(batch, results):
            self._publish(camera, header, rgb, result)
            self.stats.count('published')
            self.stats.add_sample('frame_age_ms', (self.get_clock().now().nanoseconds - stamp) / 1e6)

    def _publish(self, camera: str, header, rgb: np.ndarray, result) -> None:
        s, pubs = self.settings, self._pubs[camera]
        labels = result.labels
        if s.confidence_threshold > 0:
            uncertain = result.confidence < s.confidence_threshold
            labels = np.where(uncertain, IGNORE_INDEX, labels).astype(np.uint8)
        pubs['mask'].publish(fill_image(Image(header=header), labels, 'mono8'))
        pubs['confidence'].publish(fill_image(Image(header=header), result.confidence, '32FC1'))
        want_color = s.publish_color and pubs['color'].get_subscription_count() > 0
        want_overlay = s.publish_overlay and pubs['overlay'].get_subscription_count() > 0
        if not (want_color or want_overlay):
            return
        color = colorize(labels)  # (H, W, 3)
        if want_color:
            pubs['color'].publish(fill_image(Image(header=header), color, 'rgb8'))
        if want_overlay:
            alpha = s.overlay_alpha
            blend = cv2.addWeighted(np.ascontiguousarray(rgb), 1.0 - alpha, color, alpha, 0.0)
            blend = np.where((labels == IGNORE_INDEX)[:, :, None], rgb, blend)  # unlabelled: the input as is
            pubs['overlay'].publish(fill_image(Image(header=header), blend, 'rgb8'))

    def _warn(self, kind: str, text: str) -> None:
        """Log a warning at most once per WARN_PERIOD_S for each kind of problem."""
        now = time.monotonic()
        if now - self._last_warning.get(kind, -WARN_PERIOD_S) >= WARN_PERIOD_S:
            self._last_warning[kind] = now
            self.get_logger().warning(text)

    # ---- diagnostics ----
    def _publish_diagnostics(self) -> None:
        seg = self.seg
        extra = {'state': 'active' if self._worker is not None else 'inactive'}
        if seg is not None:
            gpu = (f'{torch.cuda.memory_allocated(seg.device) / 2**20:.1f}' if seg.device.type == 'cuda'
                   else 'n/a')
            extra.update(device=str(seg.device), model=seg.name, precision=seg.precision,
                         gpu_memory_mb=gpu, sampler=str(seg.sampler),
                         confidence_threshold=self.settings.confidence_threshold)
        array = to_diagnostic_array(self.stats.snapshot(), self.get_clock().now().to_msg(),
                                    f'{self.get_name()}: segmentation', self.get_fully_qualified_name(),
                                    self._worker is not None, extra)
        self._diag_pub.publish(array)


def main(args=None) -> int:
    """Run the node; with autostart a failed configure exits with status 1."""
    try:
        with rclpy.init(args=args):
            node = SegmentNode()
            try:
                if node.settings.autostart:
                    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                        node.get_logger().fatal(f'cannot start: {node.configure_error or "configure failed"}')
                        return 1
                    node.trigger_activate()
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
