"""camseg-bag-replay: a small drive bag played into a real segment_node process over DDS."""
import json
import os
import random
import time

import pytest
from rosbags.typesys import Stores, get_typestore

pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from camseg_core.data.bagwriter import IMAGE_TOPIC, LABEL_TOPIC, DriveConfig, write_drive_bag  # noqa: E402
from camseg_ros.tools.bagio import read_messages  # noqa: E402
from camseg_ros.tools.bag_replay import main  # noqa: E402

pytestmark = pytest.mark.ros
FRAMES, H, W = 8, 64, 128


@pytest.fixture
def domain(monkeypatch):
    monkeypatch.setenv('ROS_DOMAIN_ID', str(random.randint(150, 199)))  # test_node uses 100..149


def test_replay_into_started_node(tmp_path, domain):
    """Recorded stamps (Nov 2023) into a node with default parameters: answered, never judged stale."""
    bag = tmp_path / 'drive'
    config = DriveConfig(frames=FRAMES, height=H, width=W)
    assert time.time_ns() - config.start_ns > 86_400 * 10**9  # stamps from another day
    write_drive_bag(bag, config, progress=False)
    out = tmp_path / 'replay'
    assert main([str(bag), '--image-topic', IMAGE_TOPIC, '--label-topic', LABEL_TOPIC, '--start-node',
                 '--preset', 'tiny', '--steps', '1', '--device', 'cpu', '--rate', '0.25', '--out', str(out),
                 '--record']) == 0
    summary = json.loads((out / 'replay.json').read_text())
    assert summary['sent'] == FRAMES and summary['bag']['complete']
    counters, lat = summary['node_counters'], summary['latency']
    # Stamps from 2023 are never judged stale (the old stamp-vs-clock check answered none). A frame is only
    # lost to load: replaced by a newer one, or waiting longer than max_wait_ms behind a slow inference.
    assert summary['answered'] >= 1, summary
    assert summary['answered'] + counters['replaced'] + counters['dropped_stale'] == FRAMES, summary
    if lat['max_ms'] < 0.1 / 0.25 * 1e3:  # the node kept up with the 2.5 Hz replay: frame for frame
        assert summary['answered'] == FRAMES, summary
    assert lat['count'] == summary['answered'] and 0 < lat['median_ms'] <= lat['p95_ms'] <= lat['max_ms']
    assert summary['node_counters']['received'] >= summary['answered']  # from the node's /diagnostics
    metrics = summary['metrics']
    assert metrics['all']['num_images'] == summary['answered']
    assert 0.0 <= metrics['all']['metrics']['miou'] <= 1.0
    assert sum(metrics[s]['num_images'] for s in summary['segments']) == summary['answered']
    assert set(summary['segments']) <= {'clear', 'fog', 'snow', 'night'}
    report = (out / 'report.md').read_text()
    assert 'camseg bag replay' in report and 'latency' in report and '## Overall' in report
    topics = {}
    allowed = {t: ('sensor_msgs/msg/Image',) for t in (IMAGE_TOPIC, '/camera/segmentation/mask')}
    for topic, _, _, _ in read_messages(out / 'replayed', allowed, get_typestore(Stores.ROS2_KILTED)):
        topics[topic] = topics.get(topic, 0) + 1
    assert topics == {IMAGE_TOPIC: FRAMES, '/camera/segmentation/mask': summary['answered']}
    # The started node listens to the camera_info beside the image topic (remapped like the launch file).
    assert "'/camera/camera_info'" in (out / 'segment_node.log').read_text()


def test_bad_flags_and_missing_node(tmp_path, domain, capsys):
    with pytest.raises(SystemExit):
        main(['nobag', '--image-topic', IMAGE_TOPIC, '--out', str(tmp_path), '--preset', 'tiny'])
    assert '--start-node' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['nobag', '--image-topic', IMAGE_TOPIC, '--out', str(tmp_path), '--rate', '0'])
    assert main([str(tmp_path / 'nobag'), '--image-topic', IMAGE_TOPIC, '--out', str(tmp_path)]) == 1
    assert 'does not exist' in capsys.readouterr().err
    bag = tmp_path / 'drive'
    write_drive_bag(bag, DriveConfig(frames=4, height=H, width=W), progress=False)
    os.environ['ROS_DOMAIN_ID'] = str(random.randint(200, 230))  # nobody there (restored by monkeypatch)
    assert main([str(bag), '--image-topic', IMAGE_TOPIC, '--out', str(tmp_path / 'o'), '--timeout', '1']) == 1
    assert 'no segment_node' in capsys.readouterr().err
