"""scripts/inference_variants.py scores both models like the product does, then the variants beside that."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

from camseg_core import Segmenter, save_pretrained
from camseg_core.cli.synth import main as synth
from camseg_core.data.datasets import open_dataset
from camseg_core.evaluation.metrics import MetricSuite
from camseg_core.models.baseline import BaselineConfig, PixelClassifier

SCRIPT = Path(__file__).resolve().parents[1] / 'scripts' / 'inference_variants.py'


def load_script():
    """Import the script as a module."""
    spec = importlib.util.spec_from_file_location('inference_variants', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def product_miou(segmenter, dataset) -> float:
    """Score a Segmenter over a dataset, image by image, as camseg-eval does."""
    suite = MetricSuite()
    for i in range(len(dataset)):
        item = dataset[i]
        out = segmenter.segment(item['image'])
        suite.update(out.labels, item['label'], out.confidence)
    return suite.summary()['miou']


def test_variants_reproduce_the_product_and_write_reports(tmp_path, tiny_checkpoint, tiny_segmenter):
    data = tmp_path / 'synth'
    assert synth(['--out', str(data), '--num', '2', '--split', 'val', '--seed', '3', '--size', '64x128',
                  '--conditions', 'clear']) == 0
    torch.manual_seed(0)
    size = tuple(tiny_segmenter.config.image_size)
    baseline = save_pretrained(PixelClassifier(BaselineConfig(image_size=size, widths=(16, 32, 64),
                                                              convs_per_level=1)), tmp_path / 'baseline')
    out = tmp_path / 'variants'
    assert load_script().main(['--checkpoint', str(tiny_checkpoint), '--baseline', str(baseline),
                               '--data', f'generated:{data}', '--out', str(out), '--samples', '2',
                               '--steps', '2', '--batch-size', '2']) == 0
    results = json.loads((out / 'variants.json').read_text())['results']['clear']
    expected = {'CAM-Seg hard-2', 'CAM-Seg soft-2 +flip +bilinear', 'baseline +flip', 'CAM-Seg hard-1'}
    assert expected <= set(results)
    assert all(0.0 <= r['miou'] <= 1.0 for r in results.values())
    # the plain variants are what the product's Segmenter gives (same streams, same vote)
    dataset = open_dataset(f'cityscapes:{data}:val')
    cam = Segmenter.from_pretrained(tiny_checkpoint, device='cpu', steps=2, ensemble=2)
    assert np.isclose(results['CAM-Seg hard-2']['miou'], product_miou(cam, dataset), atol=1e-3)
    base = Segmenter.from_pretrained(baseline, device='cpu')
    assert np.isclose(results['baseline']['miou'], product_miou(base, dataset), atol=1e-3)
    assert 'CAM-Seg / baseline' in (out / 'variants.md').read_text()
    assert (out / 'variants.png').stat().st_size > 1000


def test_soft_and_hard_votes():
    script = load_script()
    probs = torch.zeros(3, 1, 20, 1, 2)  # 3 samples, one image of 1x2 pixels, 19 classes + void
    probs[0, 0, 1, 0, :] = 0.9  # sample 0: class 1 at 0.9 on both pixels
    probs[1, 0, 2, 0, :] = 0.5  # samples 1 and 2: class 2 at 0.5
    probs[2, 0, 2, 0, :] = 0.5
    ids, conf = script.hard(probs)
    assert ids.tolist() == [[[2, 2]]]  # two votes against one
    ids, conf = script.soft(probs)
    assert ids.tolist() == [[[2, 2]]] and torch.allclose(conf, torch.tensor(1 / 3))
    probs[0, 0, 1] = 3.0  # a very sure dissenter wins the mean, not the vote
    assert script.soft(probs)[0].tolist() == [[[1, 1]]] and script.hard(probs)[0].tolist() == [[[2, 2]]]


def test_bilinear_upsampling_leaves_the_letterbox_padding_out():
    script = load_script()
    probs = torch.zeros(1, 1, 20, 4, 4)  # a 4x4 canvas: the image in the top 2 rows, padding below
    probs[0, 0, 1, :2] = 1.0  # class 1 on the image
    probs[0, 0, 19, 2:] = 1.0  # void on the padding
    ids, conf = script.soft(probs, size=(4, 8), inner=(2, 4))
    assert ids.shape == (1, 4, 8) and (ids == 1).all() and torch.allclose(conf, torch.tensor(1.0))
    assert (script.soft(probs, size=(4, 8))[0] == 255).any()  # without the crop the padding leaks in
