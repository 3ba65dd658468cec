"""scripts/latent_probe.py trains a real probe on real latents and scores it beside the model."""
import importlib.util
import json
from pathlib import Path

import torch

from camseg_core.cli.synth import main as synth

SCRIPT = Path(__file__).resolve().parents[1] / 'scripts' / 'latent_probe.py'


def test_probe_trains_and_scores(tmp_path, tiny_checkpoint):
    data = tmp_path / 'synth'
    for split in ('train', 'val'):
        assert synth(['--out', str(data), '--num', '4', '--split', split, '--seed', '3', '--size', '32x64',
                      '--conditions', 'clear']) == 0
    spec = importlib.util.spec_from_file_location('latent_probe', SCRIPT)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    out = tmp_path / 'probe.json'
    assert probe.main(['--checkpoint', str(tiny_checkpoint), '--data', f'generated:{data}',
                       '--val', f'cityscapes:{data}:val', '--copies', '2', '--steps', '30',
                       '--batch-size', '4', '--workers', '0', '--out', str(out)]) == 0
    report = json.loads(out.read_text())
    assert report['train_items'] == 8 and report['val_images'] == 4
    figures = report['miou_at_processing_size']
    assert set(figures) == {'probe on image latents', 'CAM-Seg', 'labels, one class per token (no model)'}
    assert all(0.0 <= v <= 100.0 for v in figures.values())


def test_token_majority():
    spec = importlib.util.spec_from_file_location('latent_probe', SCRIPT)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    labels = torch.tensor([[[1, 1, 255, 255],
                            [1, 2, 255, 255],
                            [3, 4, 0, 0],
                            [4, 3, 0, 255]]])
    expected = torch.tensor([[1, 255], [3, 0]]).repeat_interleave(2, 0).repeat_interleave(2, 1)[None]
    assert torch.equal(probe.token_majority(labels, (2, 2)), expected)  # 3 vs 4 tie: the lower id
