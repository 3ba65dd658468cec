"""camseg-sweep: several sampler settings on the same images, with a table, a plot and a verdict."""
import json

import cv2
import numpy as np
import pytest

from camseg_core.cli.sweep import main
from camseg_core.evaluation.sweep import sweep, verdict
from camseg_core.labels import TRAIN_LABELS

COLOURS = np.array([lb.color for lb in TRAIN_LABELS], np.uint8)


def _scenes(rng, n=2):
    items = []
    for i in range(n):
        label = np.kron(rng.integers(0, 19, (2, 4)), np.ones((32, 32), np.int64)).astype(np.uint8)
        items.append({'image': COLOURS[label], 'label': label, 'name': f'scene{i}'})
    return items


def test_sweep_writes_table_plot_and_verdict(tmp_path, rng, tiny_segmenter):
    before = (tiny_segmenter.sampler, tiny_segmenter.precision)
    settings = ['paper=num_iter:1,steps:2,scheduler:ddpm',
                'fast=num_iter:1,steps:1,scheduler:ddim,precision:bf16']
    summary = sweep(tiny_segmenter, _scenes(rng), tmp_path, settings)
    assert (tiny_segmenter.sampler, tiny_segmenter.precision) == before  # settings restored
    rows = {r['name']: r for r in summary['settings']}
    assert rows['fast']['precision'] == 'bf16' and rows['paper']['sampler']['steps'] == 2
    assert all(r['num_images'] == 2 and r['latency']['median_ms'] > 0 for r in rows.values())
    assert summary['verdict']['paper'] == 'paper' and summary['verdict']['fastest'] in rows
    assert json.loads((tmp_path / 'sweep.json').read_text())['settings'][0]['name'] == 'paper'
    md = (tmp_path / 'sweep.md').read_text()
    assert '| fast |' in md and 'within 1 point' in md
    assert (tmp_path / 'sweep.png').stat().st_size > 1000
    with pytest.raises(ValueError, match='precision'):
        sweep(tiny_segmenter, _scenes(rng, 1), tmp_path, ['x=steps:1,precision:fp8'])


def test_verdict_compares_the_fastest_with_the_paper():
    rows = [{'name': 'paper', 'miou': 0.50, 'latency': {'median_ms': 100.0}},
            {'name': 'fast', 'miou': 0.495, 'latency': {'median_ms': 10.0}},
            {'name': 'slow', 'miou': 0.60, 'latency': {'median_ms': 300.0}}]
    v = verdict(rows, 'paper')
    assert v['fastest'] == 'fast' and v['within_max_loss'] and v['speedup'] == pytest.approx(10.0)
    rows[1]['miou'] = 0.48
    assert not verdict(rows, 'paper')['within_max_loss']
    assert verdict(rows, 'missing') is None


def test_cli(tmp_path, rng, tiny_checkpoint):
    d = tmp_path / 'cs' / 'leftImg8bit' / 'val' / 'aachen'
    g = tmp_path / 'cs' / 'gtFine' / 'val' / 'aachen'
    d.mkdir(parents=True)
    g.mkdir(parents=True)
    item = _scenes(rng, 1)[0]
    cv2.imwrite(str(d / 'aachen_000000_000019_leftImg8bit.png'), item['image'][..., ::-1])
    label_ids = np.array([lb.label_id for lb in TRAIN_LABELS], np.uint8)[item['label']]
    cv2.imwrite(str(g / 'aachen_000000_000019_gtFine_labelIds.png'), label_ids)
    out = tmp_path / 'out'
    assert main(['--checkpoint', str(tiny_checkpoint), '--data', f'cityscapes:{tmp_path / "cs"}:val',
                 '--out', str(out), '--device', 'cpu', '--setting', 'paper=steps:1,scheduler:ddpm',
                 '--setting', 'fast=steps:1,scheduler:ddim']) == 0
    assert [r['name'] for r in json.loads((out / 'sweep.json').read_text())['settings']] == ['paper', 'fast']
    with pytest.raises(SystemExit):
        main(['--checkpoint', str(tiny_checkpoint), '--data', f'cityscapes:{tmp_path / "cs"}:val',
              '--out', str(out), '--setting', 'a=steps:1', '--setting', 'a=steps:2'])
