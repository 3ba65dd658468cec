"""Rate, drop and latency statistics of the node, reported as diagnostic_msgs/DiagnosticArray."""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

# Every received frame ends in exactly one of the counters after 'received' (once the node is idle).
COUNTERS = ('received', 'published', 'replaced', 'unsubscribed', 'dropped_stale', 'dropped_bad_input',
            'dropped_errors', 'dropped_inactive')
PROBLEMS = ('dropped_stale', 'dropped_bad_input', 'dropped_errors')  # reported as a warning
# The time of a frame in the node, stage by stage: wait (receipt -> the worker takes it; what staleness
# is judged on), decode (message -> RGB array), processing (hand-off to the torch thread + `segment()` +
# hand-back), segment (`segment()` alone, timed on the torch thread), outputs (rendering and serialising the
# subscribed outputs into messages), publish (the publish calls); in_node: receipt -> published. processing,
# segment, outputs, publish and in_node are recorded together for each published frame (`add_samples`), so
# their medians and percentiles cover the same frames and keep each frame's order of the stages.
# stamp_offset: node clock at receipt - header stamp (for reporting only: recorded or unsynchronised stamps;
# on one host with live stamps, the transport of the frame to the node).
SAMPLES = ('wait_ms', 'decode_ms', 'processing_ms', 'segment_ms', 'outputs_ms', 'publish_ms', 'in_node_ms',
           'stamp_offset_ms')


class PipelineStats:
    """Thread-safe counters (totals and rates between reports) and recent samples (median, p95)."""

    def __init__(self, window: int = 200):
        self._lock = threading.Lock()
        self._totals = dict.fromkeys(COUNTERS, 0)
        self._last_totals = dict(self._totals)
        self._last_time = time.monotonic()
        self._samples = {name: deque(maxlen=window) for name in SAMPLES}

    def count(self, name: str, n: int = 1) -> None:
        """Add `n` to counter `name` (one of COUNTERS)."""
        with self._lock:
            self._totals[name] += n

    def add_sample(self, name: str, value: float) -> None:
        """Record one sample of `name` (one of SAMPLES)."""
        with self._lock:
            self._samples[name].append(float(value))

    def add_samples(self, values: dict[str, float]) -> None:
        """Record one sample of each of several names at once (a snapshot sees all of them or none)."""
        with self._lock:
            for name, value in values.items():
                self._samples[name].append(float(value))

    def snapshot(self) -> dict:
        """Totals, per-second rates since the previous snapshot, and median/p95 of the recent samples."""
        with self._lock:
            now = time.monotonic()
            dt = max(now - self._last_time, 1e-6)
            out = dict(self._totals)
            out.update({f'{k}_since_last': self._totals[k] - self._last_totals[k] for k in COUNTERS})
            out['input_rate_hz'] = out['received_since_last'] / dt
            out['output_rate_hz'] = out['published_since_last'] / dt
            for name, values in self._samples.items():
                arr = np.asarray(values, dtype=np.float64)
                out[f'{name}_median'] = float(np.median(arr)) if arr.size else float('nan')
                out[f'{name}_p95'] = float(np.percentile(arr, 95)) if arr.size else float('nan')
            self._last_totals, self._last_time = dict(self._totals), now
        return out


def status_level(snap: dict, active: bool) -> tuple[int, str]:
    """(level 0 OK / 1 WARN, message) for a snapshot."""
    problems = [f'{snap[k + "_since_last"]} {k.replace("_", " ")}' for k in PROBLEMS
                if snap[k + '_since_last']]
    if not active:
        return 1, 'not active'
    if problems:
        return 1, ', '.join(problems)
    if snap['received_since_last'] == 0:
        return 1, 'no input'
    return 0, 'ok'


def to_diagnostic_array(snap: dict, stamp, name: str, hardware_id: str, active: bool, extra: dict):
    """Build a DiagnosticArray with one status holding every statistic plus `extra` (device, model, ...)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    level, message = status_level(snap, active)
    values = {k: f'{v:.2f}' if isinstance(v, float) else str(v) for k, v in snap.items()
              if not k.endswith('_since_last')}
    values.update({k: str(v) for k, v in extra.items()})
    status = DiagnosticStatus(level=bytes([level]), name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
