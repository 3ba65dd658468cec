"""Seeded fuzzing of segment_node over real DDS: malformed raw and compressed images among valid frames.

The node runs in processes of its own (one raw, one compressed). Each valid frame is answered (the test
waits for its answer before sending more, so the latest-frame slot and max_wait_ms never drop one), no
malformed one ever is, the node lives, and its counters add up. Run it longer with
`CAMSEG_FUZZ_MESSAGES=5000 CAMSEG_FUZZ_SEED=1 .venv/bin/python -m pytest -s test/test_fuzz.py`
(messages per transport; default 150).
"""
import collections
import os
import random
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from camseg_ros.image_codec import compressed_to_rgb, image_to_rgb  # noqa: E402
from camseg_ros.tools.process import NODE_ENV, start_node  # noqa: E402
from hostile import fuzz_messages  # noqa: E402
from test_node import Harness, peak_rss_mb, stop_nodes  # noqa: E402

pytestmark = pytest.mark.ros
MESSAGES = int(os.environ.get('CAMSEG_FUZZ_MESSAGES', '150'))
SEED = int(os.environ.get('CAMSEG_FUZZ_SEED', '0'))
MAX_PIXELS = 2_000_000
VALID_SHARE = 0.12  # of the messages; each valid one costs an inference, the others about a millisecond
SPACING_S = 0.01  # between malformed messages, so that each reaches the worker before the next replaces it
CONFIG = Path(__file__).resolve().parents[1] / 'config' / 'segment.yaml'
# Reliable input: every message sent reaches the node, so its counters can be checked message for message.
PARAMS = {'device': 'cpu', 'steps': 1, 'max_input_pixels': MAX_PIXELS, 'qos': 'reliable',
          'publish_color': 'false', 'publish_overlay': 'false'}


@pytest.fixture(scope='module')
def fuzz(tmp_path_factory, tiny_checkpoint):
    """Start a raw and a compressed node on a private domain, and a harness listening to their masks."""
    tmp = tmp_path_factory.mktemp('fuzz')
    domain = random.randint(60, 97)  # colcon 20..59, test_node 98..149, bag replay 150..230
    saved = {k: os.environ.get(k) for k in NODE_ENV}
    os.environ.update(NODE_ENV)
    logs = {name: tmp / f'{name}.log' for name in ('raw', 'compressed')}
    # One torch thread each: two nodes with two threads each on a busy 2-core machine were seen 6x slower.
    env = dict(os.environ, OMP_NUM_THREADS='1')
    procs = {name: start_node(str(tiny_checkpoint), domain, logs[name],
                              dict(PARAMS, input_transport=name), ros_args=('-r', f'__node:={name}'),
                              params_file=CONFIG, env=env)
             for name in logs}
    harness = Harness(domain)
    harness.masks = harness.listen('segmentation/mask')  # both nodes publish there
    harness.procs, harness.logs = procs, logs
    try:
        yield harness
    finally:
        harness.close()
        stop_nodes(procs, logs, saved, tail=2000)


def counters(fuzz, node: str, reports: int = 0) -> dict[str, int]:
    """Return a node's counters from its diagnostics, waiting for `reports` more reports first."""
    keys = ('received', 'published', 'replaced', 'unsubscribed', 'dropped_bad_input', 'dropped_stale',
            'dropped_errors')
    name = f'{node}: segmentation'
    count = len(fuzz.diagnostic_stamps[name])
    assert fuzz.spin_until(lambda: fuzz.stat(node, 'received') is not None
                           and len(fuzz.diagnostic_stamps[name]) >= count + reports, 60)
    return {key: int(fuzz.stat(node, key)) for key in keys}


@pytest.mark.parametrize('transport', ['raw', 'compressed'])
def test_fuzzed_images(fuzz, transport):
    topic = 'image' if transport == 'raw' else 'image/compressed'
    decode = image_to_rgb if transport == 'raw' else compressed_to_rgb
    proc = fuzz.procs[transport]
    messages = list(fuzz_messages(SEED + (transport == 'compressed'), MESSAGES, transport, MAX_PIXELS,
                                  VALID_SHARE))
    for kind, msg, valid in messages:  # the generator's labels agree with the codec run here
        try:
            decode(msg, MAX_PIXELS)
            assert valid, kind
        except ValueError:
            assert not valid, kind
    masks = fuzz.received['segmentation/mask']
    # Outputs are only computed while subscribed: wait until the node sees this test's mask subscription.
    assert fuzz.spin_until(lambda: fuzz.masks.get_publisher_count() >= 2, 60)
    fuzz.publish(topic, type(messages[0][1])(), stamp=1)  # an empty message: matches the node, is dropped
    fuzz.wait_stat(transport, 'dropped_bad_input', lambda v: int(v) >= 1, timeout=60)
    before = counters(fuzz, transport)
    rss, _ = peak_rss_mb(proc.pid)
    Path(f'/proc/{proc.pid}/clear_refs').write_text('5')  # reset the peak to the current RSS
    valid_stamps, malformed_stamps, kinds = [], [], collections.Counter()
    start = time.monotonic()
    base = time.time_ns()
    for i, (kind, msg, valid) in enumerate(messages):
        stamp = fuzz.publish(topic, msg, stamp=base + i * 1000)  # unique stamps: answers are matched by them
        kinds[kind] += 1
        if valid:
            valid_stamps.append(stamp)
            assert fuzz.spin_until(lambda: stamp in masks, 60), f'valid frame {i} unanswered'
        else:
            malformed_stamps.append(stamp)
            fuzz.spin_until(lambda: False, SPACING_S)
        assert proc.poll() is None, f'the node died at message {i} ({kind})'
    took = time.monotonic() - start
    fuzz.spin_until(lambda: False, 1.0)  # a late answer to a malformed frame would arrive meanwhile
    after = counters(fuzz, transport, reports=2)  # taken after the last message
    delta = {key: after[key] - before[key] for key in after}
    _, peak = peak_rss_mb(proc.pid)
    print(f'{transport}: {len(messages)} messages ({len(valid_stamps)} valid) in {took:.1f} s; kinds '
          f'{dict(kinds)}; node counters {delta}; node memory {rss:.0f} MB, peak {peak:.0f} MB')
    assert proc.poll() is None
    assert not set(malformed_stamps) & set(masks), 'a malformed frame was answered'
    assert all(s in masks for s in valid_stamps)
    # Every valid frame published; every other message received dropped as bad input or replaced by the next
    # one in the latest-frame slot. The node's input keeps the last message only: under load one can be
    # overwritten before the node takes it (never a valid one: the test waits for its answer).
    assert delta['published'] == len(valid_stamps)
    assert delta['dropped_bad_input'] + delta['replaced'] == delta['received'] - len(valid_stamps)
    assert delta['dropped_stale'] == delta['dropped_errors'] == delta['unsubscribed'] == 0
    assert 0.9 * len(messages) <= delta['received'] <= len(messages)
    assert peak - rss < 100, (rss, peak)
