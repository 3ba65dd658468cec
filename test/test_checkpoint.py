"""Checkpoints: exact round trip, and clear errors for missing, truncated, mismatched and pickle files."""
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from camseg_core import CheckpointError, Segmenter, load_pretrained, save_pretrained
from camseg_core.checkpoint import export_pretrained


def test_round_trip_gives_identical_outputs(tiny_segmenter, tiny_checkpoint, rng):
    img = rng.integers(0, 256, (77, 131, 3), dtype=np.uint8)
    loaded = Segmenter.from_pretrained(tiny_checkpoint, device='cpu', steps=4, scheduler='ddim')
    assert loaded.config == tiny_segmenter.config
    a, b = tiny_segmenter.segment(img), loaded.segment(img)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.confidence, b.confidence)


def test_half_precision_storage_loads(tiny_segmenter, tmp_path):
    save_pretrained(tiny_segmenter.model, tmp_path / 'half', dtype=torch.float16)
    model, header = load_pretrained(tmp_path / 'half')
    assert next(model.parameters()).dtype == torch.float32 and header['model_type'] == 'camseg'


def test_export_stores_half_weights_and_the_vote(tiny_segmenter, tiny_checkpoint, tmp_path):
    out = export_pretrained(tiny_checkpoint, tmp_path / 'export', ensemble=4)
    stored = load_file(str(out / 'model.safetensors'))
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    model, header = load_pretrained(out)
    assert model.config.sampler.ensemble == 4 and header['config']['sampler']['ensemble'] == 4
    assert load_pretrained(tiny_checkpoint)[0].config.sampler == tiny_segmenter.config.sampler  # source kept
    kept = export_pretrained(tiny_checkpoint, tmp_path / 'kept')
    assert load_pretrained(kept)[0].config.sampler == tiny_segmenter.config.sampler
    cool = export_pretrained(tiny_checkpoint, tmp_path / 'cool', ensemble=8, temperature=0.8)
    assert load_pretrained(cool)[0].config.sampler.temperature == 0.8
    with pytest.raises(ValueError, match='temperature'):
        export_pretrained(tiny_checkpoint, tmp_path / 'bad', temperature=0.0)
    assert not (tmp_path / 'bad').exists()


def test_model_file_path_is_accepted(tiny_checkpoint):
    model, _ = load_pretrained(tiny_checkpoint / 'model.safetensors')
    assert model.config.preset == 'tiny'


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match='not found'):
        load_pretrained(tmp_path / 'nope')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(CheckpointError, match='config.json: missing'):
        load_pretrained(tmp_path / 'empty')


def test_truncated_weights(tiny_checkpoint, tmp_path):
    bad = shutil.copytree(tiny_checkpoint, tmp_path / 'trunc')
    data = (bad / 'model.safetensors').read_bytes()
    (bad / 'model.safetensors').write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match='model.safetensors: unreadable or truncated'):
        load_pretrained(bad)


def test_missing_weights_and_bad_json(tiny_checkpoint, tmp_path):
    bad = shutil.copytree(tiny_checkpoint, tmp_path / 'noweights')
    (bad / 'model.safetensors').unlink()
    with pytest.raises(CheckpointError, match='model.safetensors: missing'):
        load_pretrained(bad)
    (bad / 'config.json').write_text('{not json')
    with pytest.raises(CheckpointError, match='not valid JSON'):
        load_pretrained(bad)


def test_mismatched_config(tiny_checkpoint, tmp_path):
    bad = shutil.copytree(tiny_checkpoint, tmp_path / 'mismatch')
    header = json.loads((bad / 'config.json').read_text())
    header['config']['transformer']['width'] = 128
    header['config']['transformer']['num_heads'] = 4
    (bad / 'config.json').write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match='wrong shape'):
        load_pretrained(bad)
    header['config']['transformer']['bogus'] = 1
    (bad / 'config.json').write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match='bogus'):
        load_pretrained(bad)


@pytest.mark.parametrize('name', ['model.pt', 'weights.ckpt', 'weights.pth'])
def test_pickle_files_are_refused_with_a_conversion_hint(tmp_path, name):
    path = tmp_path / name
    torch.save({'w': torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match='never unpickles.*weights_only=True'):
        load_pretrained(path)
