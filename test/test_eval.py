"""End-to-end tests of the evaluation runner, the corruptions and the camseg-eval command."""
import json

import cv2
import numpy as np
import pytest
from PIL import Image

import torch

from camseg_core import Segmenter
from camseg_core.cli.eval import main
from camseg_core.evaluation.corruptions import CORRUPTIONS, corrupt, parse_corruptions
from camseg_core.evaluation.report import evaluate, expand_data_spec, image_batches
from camseg_core.imageops import letterbox, letterbox_labels
from camseg_core.labels import CLASS_NAMES, IGNORE_INDEX, TRAIN_LABELS
from camseg_core.models.baseline import PixelClassifier, baseline_preset

H, W = 64, 128


def _scene(rng):
    """Draw a blocky image with a matching trainId label map (some pixels ignored)."""
    label = np.kron(rng.integers(0, 19, size=(4, 8)), np.ones((16, 16), dtype=np.int64)).astype(np.uint8)
    label[:4] = IGNORE_INDEX
    image = (np.array([lb.color for lb in TRAIN_LABELS] + [(0, 0, 0)] * 237, np.uint8)[label]
             + rng.integers(0, 30, size=(H, W, 3)).astype(np.uint8))
    return image, label


def _assert_png(path, shape=None):
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == 'PNG' and im.size[0] > 50 and im.size[1] > 50
        if shape is not None:
            assert (im.size[1], im.size[0]) == shape


def test_corruptions_deterministic_and_monotonic(rng):
    image, _ = _scene(rng)
    image = cv2.GaussianBlur(image, (0, 0), 1.0)  # some structure but not flat
    for name, fn in CORRUPTIONS.items():
        outs = [fn(image, s, seed=3) for s in range(1, 6)]
        assert all(o.shape == image.shape and o.dtype == np.uint8 for o in outs), name
        diffs = [np.abs(o.astype(float) - image).mean() for o in outs]
        assert diffs[0] > 0 and all(a < b for a, b in zip(diffs, diffs[1:])), (name, diffs)
        np.testing.assert_array_equal(outs[2], fn(image, 3, seed=3))
    assert not np.array_equal(corrupt('gaussian_noise', image, 2, 0), corrupt('gaussian_noise', image, 2, 1))
    with pytest.raises(ValueError, match='severity'):
        corrupt('hue', image, 6)
    with pytest.raises(ValueError, match='unknown corruption'):
        corrupt('fog', image, 1)
    with pytest.raises(ValueError, match='uint8'):
        corrupt('hue', image.astype(np.float32), 1)
    assert parse_corruptions('all') == list(CORRUPTIONS) and parse_corruptions('none') == []
    assert parse_corruptions('hue, contrast') == ['hue', 'contrast']
    with pytest.raises(ValueError, match='unknown corruption'):
        parse_corruptions('hue,snow')


def test_evaluate_end_to_end(tmp_path, rng, tiny_segmenter):
    items = []
    for i in range(3):
        image, label = _scene(rng)
        items.append({'image': image, 'label': label, 'name': f'frame_{i}'})
    out, pred_dir = tmp_path / 'report', tmp_path / 'pred'
    result = evaluate(tiny_segmenter, items, out, batch_size=3, corruptions=['gaussian_noise'],
                      severities=[1], save_predictions=pred_dir)
    summary = json.loads((out / 'metrics.json').read_text())
    assert summary == json.loads(json.dumps(result))
    assert set(summary) >= {'model', 'settings', 'datasets', 'corruptions', 'figures'}
    data = summary['datasets']['data']
    assert data['num_images'] == 3
    assert data['metrics']['num_pixels'] == sum(int((it['label'] != IGNORE_INDEX).sum()) for it in items)
    assert 0.0 <= data['metrics']['miou'] <= 1.0 and data['metrics']['num_classes_averaged'] >= 1
    assert set(data['metrics']['calibration']) >= {'ece', 'auroc_wrong', 'reliability'}
    assert data['latency']['median_ms'] > 0 and data['latency']['p95_ms'] >= data['latency']['median_ms']
    sweep = summary['corruptions']
    assert sweep['dataset'] == 'data' and list(sweep['results']) == ['gaussian_noise']
    noisy = sweep['results']['gaussian_noise']['1']
    assert noisy['retention'] == pytest.approx(noisy['miou'] / data['metrics']['miou'])
    assert 0.0 <= noisy['mean_precision'] <= 1.0  # the paper's per-class precision, under corruption too
    for name in ('per_class_iou.png', 'reliability.png', 'robustness.png', 'samples_data.png'):
        assert name in summary['figures']
        _assert_png(out / name)
    report = (out / 'report.md').read_text()
    for heading in ('## Overall', '## Per class', '## Calibration', '## Where accuracy is lost',
                    '## Corruptions'):
        assert heading in report
    # 64x128 labels at the tiny preset's 128x256: nearest up and back down loses nothing.
    ceilings = data['ceilings']
    assert ceilings['resolution']['miou'] == 1.0 and ceilings['resolution']['pixel_accuracy'] == 1.0
    auto = ceilings['autoencoder']
    assert 0.0 <= auto['miou'] <= 1.0 and list(auto['per_class']) == list(CLASS_NAMES)
    assert 'ceilings.png' in summary['figures']
    _assert_png(out / 'ceilings.png')
    for it in items:
        path = pred_dir / 'data' / f'{it["name"]}_pred_trainIds.png'
        _assert_png(path, shape=(H, W))
        assert set(np.unique(np.asarray(Image.open(path)))) <= set(range(19)) | {IGNORE_INDEX}  # 255: void


def test_label_letterbox_places_labels_like_images(rng):
    label = rng.integers(0, 19, size=(100, 300)).astype(np.uint8)
    x, placements = letterbox_labels([label], (128, 256), torch.device('cpu'))
    _, image_placements = letterbox([np.zeros((100, 300, 3), np.uint8)], (128, 256), torch.device('cpu'))
    p = placements[0]
    assert placements == image_placements and (p.inner_height, p.inner_width) == (85, 256)
    assert x.shape == (1, 128, 256) and x.dtype == torch.uint8
    assert (x[0, 85:] == IGNORE_INDEX).all()  # padding is ignored
    assert set(np.unique(x[0, :85].numpy())) <= set(np.unique(label))  # nearest: no new ids


def test_segmenter_ceilings(rng, tiny_segmenter):
    blocks = rng.integers(0, 19, size=(8, 8))
    blocky = np.kron(blocks, np.ones((32, 64), np.int64)).astype(np.uint8)  # (256, 512)
    noisy = rng.integers(0, 19, size=(256, 512)).astype(np.uint8)
    kept, lost = tiny_segmenter.resize_labels([blocky, noisy])
    np.testing.assert_array_equal(kept.labels, blocky)  # 2x down and up: blocks survive
    assert 0.1 < (lost.labels == noisy).mean() < 0.5 and (kept.confidence == 1).all()
    assert tiny_segmenter.has_mask_autoencoder
    auto = tiny_segmenter.autoencode_labels([blocky[:64, :128]])
    assert len(auto) == 1 and auto[0].labels.shape == (64, 128) and auto[0].labels.dtype == np.uint8
    conf = auto[0].confidence
    assert conf.dtype == np.float32 and 0 <= conf.min() <= conf.max() <= 1
    with pytest.raises(ValueError, match='label map 0'):
        tiny_segmenter.resize_labels([np.zeros((4, 4, 3), np.uint8)])


def test_baseline_reports_only_the_resolution_ceiling(tmp_path, rng):
    torch.manual_seed(0)
    baseline = Segmenter(PixelClassifier(baseline_preset('micro')), device='cpu')
    assert not baseline.has_mask_autoencoder
    with pytest.raises(ValueError, match='no mask autoencoder'):
        baseline.autoencode_labels([np.zeros((8, 8), np.uint8)])
    image, label = _scene(rng)  # 64x128 at the micro preset's 32x64: some resolution is lost
    summary = evaluate(baseline, {'clear': [{'image': image, 'label': label, 'name': 'a'}]}, tmp_path)
    ceilings = summary['datasets']['clear']['ceilings']
    assert ceilings['autoencoder'] is None and 0.5 < ceilings['resolution']['miou'] <= 1.0
    report = (tmp_path / 'report.md').read_text()
    assert '## Where accuracy is lost' in report and 'ceilings.png' in summary['figures']


def test_batches_group_same_size_images():
    sizes = [(8, 8), (8, 8), (8, 8), (4, 8), (8, 8)]
    data = [{'image': np.zeros(s + (3,), np.uint8), 'label': np.zeros(s, np.uint8), 'name': str(i)}
            for i, s in enumerate(sizes)]
    assert [[b[0] for b in batch] for batch in image_batches(data, 5, 2)] == [[0, 1], [2], [3], [4]]
    assert [[b[0] for b in batch] for batch in image_batches(data, 2, 4)] == [[0, 1]]


def test_evaluate_rejects_bad_input(tmp_path, tiny_segmenter):
    item = {'image': np.zeros((8, 8, 3), np.uint8), 'label': np.zeros((8, 9), np.uint8), 'name': 'x'}
    with pytest.raises(ValueError, match='label shape'):
        evaluate(tiny_segmenter, [item], tmp_path)
    with pytest.raises(ValueError, match='unknown corruptions'):
        evaluate(tiny_segmenter, [item], tmp_path, corruptions=['fog'])
    with pytest.raises(ValueError, match='no images'):
        evaluate(tiny_segmenter, {'empty': []}, tmp_path)


def test_expand_generated(tmp_path):
    (tmp_path / 'cityscapes' / 'leftImg8bit' / 'val').mkdir(parents=True)
    for cond in ('fog', 'fog_beta0.02', 'night'):
        (tmp_path / 'acdc' / 'rgb_anon' / cond / 'val').mkdir(parents=True)
    (tmp_path / 'acdc' / 'rgb_anon' / 'snow' / 'train').mkdir(parents=True)  # no val split: left out
    pairs = expand_data_spec(f'generated:{tmp_path}')
    acdc = tmp_path / 'acdc'
    assert pairs == [('fog', f'acdc:{acdc}:fog:val'), ('fog_beta0.02', f'acdc:{acdc}:fog_beta0.02:val'),
                     ('night', f'acdc:{acdc}:night:val'),
                     ('clear', f'cityscapes:{tmp_path / "cityscapes"}:val')]
    assert expand_data_spec('acdc:/d/x:rain:val') == [('acdc:rain:val', 'acdc:/d/x:rain:val')]
    with pytest.raises(FileNotFoundError, match='found no Cityscapes'):
        expand_data_spec(f'generated:{tmp_path / "acdc" / "rgb_anon" / "snow"}')


def _write_cityscapes(root, rng, n=2):
    for i in range(n):
        image, label = _scene(rng)
        label_ids = np.array([lb.label_id for lb in TRAIN_LABELS] + [0] * 237, np.uint8)[label]
        stem = f'aachen_{i:06d}_000019'
        for folder, suffix, array in (('leftImg8bit', 'leftImg8bit', image[..., ::-1]),
                                      ('gtFine', 'gtFine_labelIds', label_ids)):
            d = root / folder / 'val' / 'aachen'
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f'{stem}_{suffix}.png'), array)


def test_cli(tmp_path, rng, tiny_checkpoint):
    _write_cityscapes(tmp_path / 'gen' / 'cityscapes', rng)
    out = tmp_path / 'out'
    common = ['--data', f'generated:{tmp_path / "gen"}', '--out', str(out)]
    assert main(['--checkpoint', str(tiny_checkpoint), *common, '--device', 'cpu', '--steps', '2',
                 '--temperature', '0.7', '--max-images', '1', '--save-predictions', '--no-ceilings']) == 0
    summary = json.loads((out / 'metrics.json').read_text())
    assert summary['datasets']['clear']['ceilings'] is None and 'ceilings.png' not in summary['figures']
    assert list(summary['datasets']) == ['clear'] and summary['datasets']['clear']['num_images'] == 1
    assert summary['model']['sampler']['steps'] == 2 and summary['corruptions'] is None
    assert summary['model']['sampler']['temperature'] == 0.7
    assert (out / 'predictions' / 'clear' / 'aachen_000000_000019_pred_trainIds.png').is_file()
    with pytest.raises(SystemExit):
        main(['--checkpoint', str(tiny_checkpoint), *common, '--corruptions', 'snow'])
    with pytest.raises(SystemExit):
        main(['--checkpoint', str(tmp_path / 'missing'), *common])
    with pytest.raises(SystemExit):  # outside (0, 10]: a usage error, not a traceback
        main(['--checkpoint', str(tiny_checkpoint), *common, '--temperature', '0'])
