"""scripts/robustness_breakdown.py: the swapped-input scores of a real model on real generated twins."""
import importlib.util
import json
from pathlib import Path

import torch

from camseg_core import Segmenter
from camseg_core.checkpoint import build_model, save_pretrained
from camseg_core.cli.synth import main as synth
from camseg_core.config import preset
from camseg_core.data.datasets import open_dataset
from camseg_core.evaluation.metrics import MetricSuite
from camseg_core.evaluation.report import check_item

SCRIPT = Path(__file__).resolve().parents[1] / 'scripts' / 'robustness_breakdown.py'


def _score(checkpoint, spec, n):
    segmenter = Segmenter.from_pretrained(checkpoint, device='cpu', seed=0, ensemble=1, steps=4,
                                          scheduler='ddim')
    suite, data = MetricSuite(), open_dataset(spec)
    items = [check_item(data[i], i) for i in range(n)]
    for (_, label, _), out in zip(items, segmenter.segment([it[0] for it in items])):
        suite.update(out.labels, label, out.confidence)
    return suite.summary()['miou']


def test_swapped_inputs_reproduce_the_plain_model_at_both_ends(tmp_path):
    """'condition' is the plain model on the snow images, 'clear' the plain model on their clear twins."""
    data = tmp_path / 'synth'
    assert synth(['--out', str(data), '--num', '4', '--split', 'val', '--seed', '3', '--size', '32x64',
                  '--conditions', 'clear,snow']) == 0
    config = preset('tiny')
    config.image_size = (32, 64)
    config.transformer.pixel_stem = 32
    config.sampler.ensemble, config.sampler.steps, config.sampler.scheduler = 1, 4, 'ddim'
    torch.manual_seed(0)
    checkpoint = save_pretrained(build_model('camseg', config.to_dict()).eval(), tmp_path / 'model')
    spec = importlib.util.spec_from_file_location('robustness_breakdown', SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / 'out'
    assert script.main(['--checkpoint', str(checkpoint), '--data', f'generated:{data}', '--out', str(out),
                        '--batch-size', '4']) == 0
    report = json.loads((out / 'breakdown.json').read_text())
    snow = report['conditions']['snow']
    assert set(snow) >= set(script.MODES) and snow['num_images'] == 4
    # the condition's own inputs are the plain model on the snow images; the twin's are the plain clear score
    assert abs(snow['condition']['miou'] - _score(checkpoint, f'acdc:{data}:snow:val', 4)) < 1e-9
    assert abs(snow['clear']['miou'] - _score(checkpoint, f'cityscapes:{data}:val', 4)) < 1e-9
    assert 0 < snow['drift']['tokens'] and 0 < snow['drift']['stem']
    assert (out / 'breakdown.md').read_text().count('| snow |') == 1
