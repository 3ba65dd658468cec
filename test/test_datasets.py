"""camseg-synth dataset layouts, the Cityscapes/ACDC loaders and training augmentation."""
import hashlib

import numpy as np
import pytest

from camseg_core.cli.synth import main as synth_main
from camseg_core.data.augment import Augment, AugmentConfig
from camseg_core.data.datasets import ACDCDataset, CityscapesDataset, list_conditions, open_dataset
from camseg_core.data.synth import render_scene, SceneConfig
from camseg_core.labels import colorize, IGNORE_INDEX, label_ids_to_train_ids, PALETTE

NUM = 3


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp('synth')
    assert synth_main(['--out', str(out), '--num', str(NUM), '--split', 'val', '--seed', '7',
                       '--size', '64x128', '--conditions', 'clear,fog,night']) == 0
    return out


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob('*') if p.is_file())


def test_cli_writes_the_official_layouts(root):
    files = _files(root)
    expected = []
    for i in range(NUM):
        name = f'synth7_000000_{i:06d}'
        expected += [f'leftImg8bit/val/synth7/{name}_leftImg8bit.png',
                     f'gtFine/val/synth7/{name}_gtFine_labelIds.png']
        for cond in ('fog', 'fog_beta0.005', 'fog_beta0.02', 'night'):
            name = f'SYN7_frame_{i:06d}'
            expected += [f'rgb_anon/{cond}/val/SYN7/{name}_rgb_anon.png',
                         f'gt/{cond}/val/SYN7/{name}_gt_labelIds.png',
                         f'rgb_anon/{cond}/val_ref/SYN7/{name}_rgb_ref_anon.png']
    assert files == sorted(expected)


def test_cli_is_deterministic(root, tmp_path):
    assert synth_main(['--out', str(tmp_path), '--num', str(NUM), '--split', 'val', '--seed', '7',
                       '--size', '64x128', '--conditions', 'clear,fog,night']) == 0
    for rel in _files(root):
        assert hashlib.sha1((root / rel).read_bytes()).digest() == \
            hashlib.sha1((tmp_path / rel).read_bytes()).digest(), rel


def test_cli_rejects_bad_arguments(tmp_path):
    out = ['--out', str(tmp_path)]
    bad = (out + ['--conditions', 'haze'], out + ['--size', '64by128'], out + ['--num', '-1'], [])
    for argv in bad:
        with pytest.raises(SystemExit) as e:
            synth_main(argv)
        assert e.value.code == 2


def test_cityscapes_loader_reads_back(root):
    ds = CityscapesDataset(root, 'val')
    assert len(ds) == NUM
    item = ds[1]
    assert item['name'] == 'synth7_000000_000001' and item['path'].endswith('_leftImg8bit.png')
    assert item['image'].shape == (64, 128, 3) and item['image'].dtype == np.uint8
    scene = render_scene(np.random.default_rng([7, 1]), SceneConfig(64, 128))  # what the CLI rendered
    assert np.array_equal(item['image'], scene.image)
    assert np.array_equal(item['label'], label_ids_to_train_ids(scene.label_ids))


def test_acdc_loader_excludes_references(root):
    assert list_conditions(root, 'val') == ['fog', 'fog_beta0.005', 'fog_beta0.02', 'night']
    ds = ACDCDataset(root, 'night', 'val')
    assert len(ds) == NUM and not any('_ref' in str(img) for img, _, _ in ds.pairs)
    item = ds[0]
    assert item['name'] == 'SYN7_frame_000000' and item['path'].endswith('_rgb_anon.png')
    city = CityscapesDataset(root, 'val')[0]
    assert np.array_equal(item['label'], city['label'])  # weather leaves the labels alone
    assert item['image'].mean() < city['image'].mean()
    with pytest.raises(ValueError, match='reference'):
        ACDCDataset(root, 'night', 'val_ref')


def test_open_dataset_specs(root):
    assert len(open_dataset(f'cityscapes:{root}:val')) == NUM
    assert open_dataset(f'acdc:{root}:fog_beta0.02:val')[2]['name'] == 'SYN7_frame_000002'
    for bad in (f'kitti:{root}:val', f'acdc:{root}:val', 'cityscapes:'):
        with pytest.raises(ValueError, match='spec'):
            open_dataset(bad)


def test_missing_files_are_named(root, tmp_path):
    with pytest.raises(FileNotFoundError, match='leftImg8bit'):
        CityscapesDataset(tmp_path, 'val')
    with pytest.raises(FileNotFoundError, match='snow'):
        ACDCDataset(root, 'snow', 'val')
    victim = root / 'gt' / 'fog' / 'val' / 'SYN7' / 'SYN7_frame_000001_gt_labelIds.png'
    data = victim.read_bytes()
    victim.unlink()
    try:
        with pytest.raises(FileNotFoundError, match='SYN7_frame_000001_gt_labelIds.png'):
            ACDCDataset(root, 'fog', 'val')
    finally:
        victim.write_bytes(data)


def _pair(seed=0):
    s = render_scene(seed, SceneConfig(64, 128))
    return s.image, label_ids_to_train_ids(s.label_ids)


def test_augment_flip_keeps_alignment():
    image, label = _pair()
    geo = AugmentConfig(crop=(64, 128), scale=(1.0, 1.0), flip=1.0, photometric=0, weather=0, noise=0,
                        low_light=0)
    img2, lab2 = Augment(geo, seed=0)(image, label)
    assert np.array_equal(img2, image[:, ::-1]) and np.array_equal(lab2, label[:, ::-1])
    # paint each class in its palette colour: after a random zoom, crop and flip, every pixel that still
    # shows a class colour (not a blend at a boundary) must carry that class's label
    painted = colorize(label)
    cfg = AugmentConfig(crop=(48, 96), scale=(1.3, 2.0), photometric=0, weather=0, noise=0, low_light=0)
    aug = Augment(cfg, seed=3)
    for _ in range(4):
        img3, lab3 = aug(painted, label)
        exact = (img3[..., None, :] == PALETTE).all(-1)  # (H, W, 19)
        shown = exact.argmax(-1)
        keep = exact.any(-1)
        assert keep.mean() > 0.5 and np.array_equal(shown[keep], lab3[keep])


def test_augment_pads_labels_with_ignore_and_is_deterministic():
    image, label = _pair(1)
    cfg = AugmentConfig(crop=(96, 256), scale=(0.5, 0.5), weather=1.0, noise=1.0)
    a, b = Augment(cfg, seed=5), Augment(cfg, seed=5)
    for _ in range(3):
        (i1, l1), (i2, l2) = a(image, label), b(image, label)
        assert np.array_equal(i1, i2) and np.array_equal(l1, l2)
    assert i1.shape == (96, 256, 3) and l1.shape == (96, 256)
    # the height is scaled to 0.5 * 96 = 48 rows, the width likewise to 96 columns; the rest is padding
    assert (l1 != IGNORE_INDEX).sum() == 48 * 96 and (l1[48:] == IGNORE_INDEX).all()
    with pytest.raises(ValueError, match='label'):
        a(image, label[:10])


def test_augment_low_light_darkens_the_image_only():
    image, label = _pair(2)
    cfg = AugmentConfig(crop=(64, 128), scale=(1.0, 1.0), flip=0, photometric=0, weather=0, noise=0,
                        low_light=1.0)
    aug = Augment(cfg, seed=4)
    means = []
    for _ in range(4):
        dark, lab = aug(image, label)
        assert np.array_equal(lab, label) and dark.dtype == np.uint8
        means.append(dark.mean() / image.mean())
    # exposure 20-60 % after a gamma of 1.1-1.7: every draw is darker than 60 %, and the draws differ
    assert max(means) < 0.6 and len(set(np.round(means, 3))) == 4
    with pytest.raises(ValueError, match='low_light'):
        AugmentConfig(low_light=1.5).validate()


def test_augment_jitter_sets_the_colour_jitter_strength():
    image, label = _pair(2)
    spread = {}
    for jitter in (0.0, 0.5):
        cfg = AugmentConfig(crop=(64, 128), scale=(1.0, 1.0), flip=0, photometric=1.0, weather=0, noise=0,
                            low_light=0, jitter=jitter)
        aug = Augment(cfg, seed=5)
        spread[jitter] = np.std([aug(image, label)[0].mean() for _ in range(8)])
    assert spread[0.0] < 0.5 < spread[0.5]  # no jitter: the same image every draw; 0.5: brightness varies
    with pytest.raises(ValueError, match='jitter'):
        AugmentConfig(jitter=1.0).validate()
