"""camseg-bag-eval on small generated drive bags (mcap and sqlite3), with a random tiny model."""
import json
import shutil

import cv2
import numpy as np
import pytest
from mcap.reader import make_reader
from mcap.writer import Writer as McapWriter
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from camseg_core.data.bagwriter import IMAGE_TOPIC, LABEL_TOPIC, DriveConfig, write_drive_bag
from camseg_ros.tools.bag_eval import main

FRAMES, H, W = 8, 64, 128
ARGS = ['--image-topic', IMAGE_TOPIC, '--preset', 'tiny', '--steps', '2', '--device', 'cpu', '--no-progress']
STRETCHES = ['clear', 'fog', 'snow', 'night']


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp('bags')
    for storage in ('mcap', 'sqlite3'):
        write_drive_bag(root / storage, DriveConfig(frames=FRAMES, height=H, width=W, storage=storage),
                        progress=False)
    return root


def _copy_to_mcap(src, dst, chunk_size=1 << 20, compressed=False):
    """Copy a drive bag into one standalone .mcap file (small chunks; images optionally PNG-compressed)."""
    ts = get_typestore(Stores.ROS2_KILTED)
    image_type = 'sensor_msgs/msg/CompressedImage' if compressed else 'sensor_msgs/msg/Image'
    with AnyReader([src], default_typestore=ts) as reader, open(dst, 'wb') as f:
        out = McapWriter(f, chunk_size=chunk_size)
        out.start('ros2', 'test')
        channels = {}
        for topic, typ in ((IMAGE_TOPIC, image_type), (LABEL_TOPIC, 'sensor_msgs/msg/Image')):
            schema = out.register_schema(typ, 'ros2msg', ts.generate_msgdef(typ)[0].encode())
            channels[topic] = out.register_channel(topic, 'cdr', schema)
        schema = out.register_schema('std_msgs/msg/String', 'ros2msg', b'string data')
        status = out.register_channel('/status', 'cdr', schema)
        go = ts.serialize_cdr(ts.types['std_msgs/msg/String'](data='go'), 'std_msgs/msg/String')
        out.add_message(status, log_time=0, publish_time=0, data=go)
        for conn, t, raw in reader.messages():
            if compressed and conn.topic == IMAGE_TOPIC:
                msg = reader.deserialize(raw, conn.msgtype)
                png = cv2.imencode('.png', msg.data.reshape(msg.height, msg.width, 3)[:, :, ::-1])[1]
                compressed_msg = ts.types[image_type](header=msg.header, format='png', data=png.ravel())
                raw = ts.serialize_cdr(compressed_msg, image_type)
            out.add_message(channels[conn.topic], log_time=t, data=bytes(raw), publish_time=t)
        out.finish()
    return dst


def _read_back(bag_dir):
    """All messages of the output bag decoded with the mcap library: topic -> list of messages."""
    files = list(bag_dir.glob('*.mcap'))
    assert len(files) == 1
    found = {}
    with open(files[0], 'rb') as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for _, channel, _, msg in reader.iter_decoded_messages():
            found.setdefault(channel.topic, []).append(msg)
    return found


def _run(bag, out, *extra):
    return main([str(bag), '--out', str(out), *ARGS, *extra])


def test_mcap_bag_per_stretch(bags, tmp_path):
    out = tmp_path / 'eval'
    assert _run(bags / 'mcap', out, '--label-topic', LABEL_TOPIC, '--batch-size', '3') == 0
    summary = json.loads((out / 'metrics.json').read_text())
    assert summary['segments'] == STRETCHES and summary['bag']['complete']
    assert summary['bag']['grouping'] == 'stretches' and summary['bag']['unmatched_images'] == 0
    assert summary['datasets']['all']['num_images'] == FRAMES
    for name in STRETCHES:
        m = summary['datasets'][name]['metrics']
        assert summary['datasets'][name]['num_images'] == 2 and m['num_pixels'] > 0
        assert set(m) >= {'miou', 'mean_precision', 'per_class', 'calibration'}
        assert {'ece', 'auroc_wrong'} <= set(m['calibration']) and 0 <= m['miou'] <= 1
    for f in ['report.md', 'per_class_iou.png', 'reliability.png', 'samples.png']:
        assert (out / f).is_file(), f
    assert 'fog' in (out / 'report.md').read_text()

    found = _read_back(out / 'segmented')
    assert {t: len(v) for t, v in found.items()} == {
        IMAGE_TOPIC: FRAMES, '/camera/segmentation/mask': FRAMES,
        '/camera/segmentation/confidence': FRAMES, '/camera/segmentation/color': FRAMES}
    stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in found[IMAGE_TOPIC]]
    for topic, encoding in (('mask', 'mono8'), ('confidence', '32FC1'), ('color', 'rgb8')):
        msgs = found[f'/camera/segmentation/{topic}']
        assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in msgs] == stamps
        assert all(m.encoding == encoding and (m.height, m.width) == (H, W) for m in msgs)
    conf = np.frombuffer(bytes(found['/camera/segmentation/confidence'][0].data), np.float32)
    assert conf.size == H * W and conf.min() >= 0 and conf.max() <= 1
    mask = np.frombuffer(bytes(found['/camera/segmentation/mask'][0].data), np.uint8)
    assert np.isin(mask, [*range(19), 255]).all()  # a class, or void


def test_sqlite_bag_stretches_from_metadata(bags, tmp_path):
    bag = shutil.copytree(bags / 'sqlite3', tmp_path / 'bag')
    (bag / 'stretches.json').unlink()  # the same information is in metadata.yaml custom_data
    assert _run(bag, tmp_path / 'eval', '--label-topic', LABEL_TOPIC) == 0
    summary = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
    assert summary['segments'] == STRETCHES
    assert sum(summary['datasets'][n]['num_images'] for n in STRETCHES) == FRAMES
    assert len(_read_back(tmp_path / 'eval' / 'segmented')['/camera/segmentation/mask']) == FRAMES


def test_compressed_images_time_windows(bags, tmp_path):
    bag = _copy_to_mcap(bags / 'mcap', tmp_path / 'drive.mcap', compressed=True)
    out = tmp_path / 'eval'
    assert _run(bag, out, '--label-topic', LABEL_TOPIC, '--segment-seconds', '0.4') == 0
    summary = json.loads((out / 'metrics.json').read_text())
    assert summary['segments'] == ['0-0.4s', '0.4-0.8s']  # 10 fps: 4 frames per window
    assert [summary['datasets'][n]['num_images'] for n in summary['segments']] == [4, 4]
    found = _read_back(out / 'segmented')
    assert found[IMAGE_TOPIC][0].format == 'png' and len(found['/camera/segmentation/color']) == FRAMES


def test_sampler_flags_reach_the_segmenter(bags, tmp_path, capsys):
    assert _run(bags / 'mcap', tmp_path / 'eval', '--ensemble', '2', '--num-iter', '2',
                '--exposure-floor', '0.25') == 0
    model = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())['model']
    sampler = model['sampler']
    assert (sampler['ensemble'], sampler['num_iter'], sampler['steps']) == (2, 2, 2)
    assert model['exposure_floor'] == 0.25
    with pytest.raises(SystemExit):
        _run(bags / 'mcap', tmp_path / 'eval0', '--ensemble', '0')
    assert 'ensemble' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run(bags / 'mcap', tmp_path / 'eval1', '--exposure-floor', '1.5')
    assert 'exposure_floor' in capsys.readouterr().err


def test_missing_topic(bags, tmp_path, capsys):
    assert _run(bags / 'mcap', tmp_path / 'eval', '--label-topic', '/camera/nothing') == 1
    assert '/camera/nothing' in capsys.readouterr().err
    assert not json.loads((tmp_path / 'eval' / 'metrics.json').read_text())['bag']['complete']


def test_wrong_message_type(bags, tmp_path, capsys):
    argv = [str(bags / 'mcap'), '--out', str(tmp_path / 'eval'), *ARGS]
    argv[argv.index(IMAGE_TOPIC)] = '/rosout'
    assert main(argv) == 1
    assert '/rosout' in capsys.readouterr().err  # not in the bag at all
    bag = _copy_to_mcap(bags / 'mcap', tmp_path / 'drive.mcap')
    argv = [str(bag), '--out', str(tmp_path / 'eval2'), *ARGS]
    argv[argv.index(IMAGE_TOPIC)] = '/status'
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert '/status' in err and 'std_msgs/msg/String' in err


def test_truncated_mcap_keeps_processed(bags, tmp_path, capsys):
    bag = _copy_to_mcap(bags / 'mcap', tmp_path / 'drive.mcap', chunk_size=20_000)
    data = bag.read_bytes()
    bag.write_bytes(data[:int(len(data) * 0.6)])
    out = tmp_path / 'eval'
    assert _run(bag, out, '--label-topic', LABEL_TOPIC, '--batch-size', '2') == 1
    err = capsys.readouterr().err
    assert 'cut off' in err and 'drive.mcap' in err
    summary = json.loads((out / 'metrics.json').read_text())
    assert not summary['bag']['complete'] and 'cut off' in summary['bag']['error']
    done = summary['bag']['images']
    assert 0 < done < FRAMES and summary['datasets']['all']['num_images'] >= done - 1
    assert len(_read_back(out / 'segmented')['/camera/segmentation/mask']) == done
    assert 'Incomplete' in (out / 'report.md').read_text()
