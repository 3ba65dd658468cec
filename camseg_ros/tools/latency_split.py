"""The latency probe's figures: percentiles, and where the end-to-end median goes (the split).

`split` combines the probe's own timings (end to end, `segment()` alone, its publish() call) with the
diagnostics medians of segment_node; `format_split` prints it as `camseg-latency-probe` shows it. No ROS
import: tested with plain numbers.
"""
from __future__ import annotations

import numpy as np


def percentiles(values_ms) -> str:
    """Format as 'min W ms, median X ms, p95 Y ms (n=N)'."""
    arr = np.asarray(values_ms, dtype=np.float64)
    if not arr.size:
        return 'no samples'
    return (f'min {arr.min():.0f} ms, median {np.median(arr):.0f} ms, p95 {np.percentile(arr, 95):.0f} ms '
            f'(n={arr.size})')


# (key in split(), the node's diagnostics sample or None, label)
STAGES = (
    ('probe_publish', None, "probe's publish() call (part of transport in)"),
    ('transport_in', 'stamp_offset_ms', 'transport in: stamp -> node callback'),
    ('wait', 'wait_ms', 'node: callback -> worker'),
    ('decode', 'decode_ms', 'node: decode to RGB'),
    ('handoff', None, 'node: hand-off to/from the torch thread'),
    ('segment', 'segment_ms', 'node: segment()'),
    ('outputs', 'outputs_ms', 'node: render + serialise outputs'),
    ('publish', 'publish_ms', 'node: publish()'),
    ('in_node', 'in_node_ms', 'node: callback -> published'),
    ('transport_out', None, 'transport out: the rest, to the probe callback'),
)


def split(alone: float, end_to_end: float, probe_publish: float, diagnostics: dict,
          floor: float = float('nan')) -> dict:
    """Where the end-to-end median goes, from the node's diagnostics medians (ms; NaN where unknown).

    `floor` is the relay's end-to-end median (no model): what transport alone costs for these messages.
    """
    def stat(key: str) -> float:
        try:
            return float(diagnostics.get(f'{key}_median', 'nan'))
        except ValueError:
            return float('nan')

    out = {key: stat(sample) for key, sample, _ in STAGES if sample}
    out['probe_publish'] = float(probe_publish)
    out['handoff'] = stat('processing_ms') - out['segment']
    out['transport_out'] = end_to_end - out['transport_in'] - out['in_node']
    out.update(segment_alone=float(alone), end_to_end=float(end_to_end),
               node_overhead=float(end_to_end - alone), segment_inside_minus_alone=out['segment'] - alone,
               transport=out['transport_in'] + out['transport_out'])
    out['node_work'] = out['in_node'] - out['segment']  # the node's own stages besides segment()
    out.update(transport_floor=float(floor), beyond_floor=out['node_overhead'] - floor)
    return out


def format_split(figures: dict) -> str:
    """Render split() as an indented table and the overhead summary."""
    lines = ['where the end-to-end median goes (medians, ms):']
    lines += [f'  {label:<48} {figures[key]:7.1f}' for key, _, label in STAGES]
    lines.append(f'node overhead (end to end - segment() alone): {figures["node_overhead"]:.1f} ms = '
                 f'segment() inside the node - alone {figures["segment_inside_minus_alone"]:.1f} + '
                 f'the node\'s own stages {figures["node_work"]:.1f} + transport in and out '
                 f'{figures["transport"]:.1f}')
    lines.append(f'transport floor (the relay, no model, end to end): {figures["transport_floor"]:.1f} ms; '
                 f'node overhead beyond it: {figures["beyond_floor"]:.1f} ms')
    return '\n'.join(lines)
