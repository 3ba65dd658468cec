"""Synthetic scenes, weather renderers and the sample drive bag."""
import json
import subprocess
import sys

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from camseg_core.cli.synth import main as synth_main
from camseg_core.data.bagwriter import IMAGE_TOPIC, LABEL_TOPIC, DriveConfig, write_drive_bag
from camseg_core.data.synth import SceneConfig, make_layout, render_layout, render_scene
from camseg_core.data.weather import apply_weather, fog, parse_condition
from camseg_core.labels import LABEL_ID_TO_TRAIN_ID, NAME_TO_LABEL_ID, label_ids_to_train_ids

SMALL = SceneConfig(64, 128)
VALID_IDS = [i for i in NAME_TO_LABEL_ID.values()]


def test_scene_is_deterministic_under_a_seed():
    a, b, c = render_scene(5, SMALL), render_scene(5, SMALL), render_scene(6, SMALL)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label_ids, b.label_ids)
    assert np.array_equal(a.depth, b.depth)
    assert not np.array_equal(a.label_ids, c.label_ids)


def test_scene_contents_are_valid_and_varied():
    seen = set()
    for seed in range(8):
        s = render_scene(seed, SMALL)
        assert s.image.shape == (64, 128, 3) and s.image.dtype == np.uint8
        assert s.label_ids.shape == (64, 128) and s.label_ids.dtype == np.uint8
        assert s.depth.dtype == np.float32 and (s.depth > 0).all() and np.isfinite(s.depth).all()
        assert set(np.unique(s.label_ids)) <= set(VALID_IDS)
        sky = s.label_ids == NAME_TO_LABEL_ID['sky']
        assert (s.depth[sky] == SMALL.sky_depth).all() and (s.depth[~sky] < SMALL.sky_depth).all()
        train_ids = np.unique(label_ids_to_train_ids(s.label_ids))
        assert 255 not in train_ids and len(train_ids) >= 9
        seen |= set(train_ids.tolist())
    assert len(seen) >= 17  # (nearly) all 19 classes within a few scenes


def test_ground_depth_grows_towards_the_horizon():
    s = render_scene(3, SceneConfig(128, 256))
    road = s.label_ids == NAME_TO_LABEL_ID['road']
    rows = [r for r in range(128) if road[r].any()]
    med = [np.median(s.depth[r][road[r]]) for r in rows]
    assert med[0] > 4 * med[-1]  # far rows (top) are much deeper than the bottom row
    assert np.all(np.diff(med) <= 1e-3)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match='focal'):
        render_scene(0, SceneConfig(64, 128, focal=(0.9, 0.5)))
    with pytest.raises(ValueError, match='16x16'):
        SceneConfig(8, 128).validate()


def test_fog_follows_koschmieder():
    s = render_scene(1, SMALL)
    beta, L = 0.02, 210.0
    out = fog(s.image, s.depth, beta, L)
    for y, x in [(60, 10), (40, 64), (5, 100)]:
        t = np.exp(-beta * s.depth[y, x])
        expected = s.image[y, x].astype(np.float64) * t + L * (1 - t)
        assert np.abs(out[y, x] - expected).max() <= 0.5 + 1e-3
    sky = s.label_ids == NAME_TO_LABEL_ID['sky']
    assert np.abs(out[sky].astype(int) - L).max() <= 2  # t = exp(-20) at the sky depth
    thin, thick = apply_weather(s, 'fog_beta0.005', 0), apply_weather(s, 'fog_beta0.02', 0)
    assert thick.astype(float).std() < thin.astype(float).std()  # denser fog, less contrast


@pytest.mark.parametrize('condition', ['clear', 'fog', 'snow', 'rain', 'night'])
def test_weather_is_deterministic_and_keeps_size(condition):
    s = render_scene(2, SMALL)
    a, b = apply_weather(s, condition, 11), apply_weather(s, condition, 11)
    assert a.shape == s.image.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    if condition != 'clear':
        assert not np.array_equal(a, s.image)
    if condition == 'night':
        assert a.mean() < 0.6 * s.image.mean()


def test_condition_names():
    assert parse_condition('fog') == ('fog', 0.01)
    assert parse_condition('fog_beta0.005') == ('fog', 0.005)
    for bad in ('haze', 'fog_beta', 'fog_beta-1'):
        with pytest.raises(ValueError, match='unknown condition'):
            parse_condition(bad)


def test_drive_moves_the_camera_smoothly():
    lay = make_layout(np.random.default_rng(4), SMALL, length=20.0, speed=8.0)
    f0, f1, f9 = (render_layout(lay, t, 0) for t in (0.0, 0.1, 1.0))
    same01 = (f0.label_ids == f1.label_ids).mean()
    same09 = (f0.label_ids == f9.label_ids).mean()
    assert same01 > 0.8 and same09 < same01


@pytest.mark.parametrize('storage,suffix', [('mcap', '.mcap'), ('sqlite3', '.db3')])
def test_drive_bag_round_trip(tmp_path, storage, suffix):
    path = tmp_path / 'drive'
    cfg = DriveConfig(frames=8, fps=10.0, height=32, width=64, storage=storage, seed=1)
    info = write_drive_bag(path, cfg, progress=False)
    assert len(list(path.glob(f'*{suffix}'))) == 1
    side = json.loads((path / 'stretches.json').read_text())
    assert side == info and [s['condition'] for s in side['stretches']] == ['clear', 'fog', 'snow', 'night']
    got = {IMAGE_TOPIC: [], LABEL_TOPIC: []}
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        for conn, stamp, raw in reader.messages(connections=reader.connections):
            msg = reader.deserialize(raw, conn.msgtype)
            assert msg.header.frame_id == 'camera'
            assert msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec == stamp
            ch = 3 if msg.encoding == 'rgb8' else 1
            array = np.asarray(msg.data).reshape(msg.height, msg.width, ch)
            got[conn.topic].append((stamp, msg.encoding, array))
    assert [e for _, e, _ in got[IMAGE_TOPIC]] == ['rgb8'] * 8
    assert [e for _, e, _ in got[LABEL_TOPIC]] == ['mono8'] * 8
    assert [s for s, _, _ in got[IMAGE_TOPIC]] == [s for s, _, _ in got[LABEL_TOPIC]]
    stamps = [s for s, _, _ in got[IMAGE_TOPIC]]
    assert stamps[0] == side['stretches'][0]['start_ns'] and stamps[-1] == side['stretches'][-1]['end_ns']
    assert np.diff(stamps).tolist() == [10 ** 8] * 7
    labels = np.stack([a for _, _, a in got[LABEL_TOPIC]])
    assert set(np.unique(labels)) <= set(LABEL_ID_TO_TRAIN_ID[VALID_IDS].tolist())
    images = np.stack([a for _, _, a in got[IMAGE_TOPIC]]).astype(float)
    assert images[6:].mean() < 0.6 * images[:2].mean()  # the night stretch is dark


def test_drive_bag_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match='multiple'):
        write_drive_bag(tmp_path / 'b', DriveConfig(frames=6, height=32, width=64))
    with pytest.raises(ValueError, match='storage'):
        write_drive_bag(tmp_path / 'b', DriveConfig(frames=4, storage='rosbag1'))
    (tmp_path / 'exists').mkdir()
    with pytest.raises(FileExistsError, match='exists'):
        write_drive_bag(tmp_path / 'exists', DriveConfig(frames=4, height=32, width=64))


def test_parallel_synth_writes_the_same_files(tmp_path):
    def files(root):
        return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}

    common = ['--num', '5', '--split', 'val', '--seed', '3', '--size', '32x64',
              '--conditions', 'clear,fog_beta0.02,snow']
    assert synth_main(['--out', str(tmp_path / 'one'), *common]) == 0
    assert synth_main(['--out', str(tmp_path / 'two'), *common, '--workers', '2']) == 0
    one, two = files(tmp_path / 'one'), files(tmp_path / 'two')
    assert len(one) == 5 * (2 + 3 * 2) and one == two
    with pytest.raises(SystemExit):
        synth_main(['--out', str(tmp_path / 'bad'), *common, '--workers', '0'])


def test_datasets_and_training_need_no_rosbags(tmp_path):
    """A bare GPU machine has no rosbags: generating a dataset, training and evaluating must not import it."""
    from camseg_core.cli.synth import build_parser
    from camseg_core.data.bagwriter import STORAGES
    storage = next(a for a in build_parser()._actions if a.dest == 'storage')
    assert set(storage.choices) == set(STORAGES)  # the parser names the bag writer's storages
    code = ("import sys; sys.modules['rosbags'] = None\n"  # any import of it raises ImportError
            "from camseg_core.cli import eval, train\n"
            "from camseg_core.cli.synth import main\n"
            f"sys.exit(main(['--out', {str(tmp_path / 'data')!r}, '--num', '1', '--size', '32x64', "
            "'--conditions', 'clear']))\n")
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list((tmp_path / 'data').rglob('*.png'))) == 2
