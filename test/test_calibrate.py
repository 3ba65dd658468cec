"""Confidence calibration: the sampler's confidence temperature, its fit, and camseg-calibrate."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from camseg_core import Segmenter
from camseg_core.assets import resolve_checkpoint
from camseg_core.checkpoint import load_pretrained, save_pretrained
from camseg_core.cli.calibrate import main as calibrate_main
from camseg_core.cli.synth import main as synth_main
from camseg_core.config import CamSegConfig, SamplerConfig
from camseg_core.data.datasets import open_dataset
from camseg_core.evaluation.calibrate import (calibrated_sampler, collect_scores, confidence,
                                              evaluate_temperature, fit_temperature)
from camseg_core.imageops import letterbox

SHIPPED = resolve_checkpoint(None)
FAST = dict(ensemble=1, steps=4, scheduler='ddim', num_iter=1)


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    """Three generated validation scenes, clear and at night."""
    root = tmp_path_factory.mktemp('calib') / 'data'
    assert synth_main(['--out', str(root), '--num', '3', '--split', 'val', '--seed', '5', '--size', '128x256',
                       '--conditions', 'clear,night']) == 0
    return root


@pytest.fixture(scope='module')
def fast_segmenter():
    return Segmenter.from_pretrained(SHIPPED, device='cpu', **FAST)


@pytest.fixture(scope='module')
def night_scores(scenes, fast_segmenter):
    return collect_scores(fast_segmenter, open_dataset(f'acdc:{scenes}:night:val'), pixels_per_image=4096,
                          progress=False)


def test_fit_lowers_log_loss_and_ece(night_scores):
    assert night_scores.ensemble == 1 and night_scores.logits.shape[1] == night_scores.target.numel() > 3000
    raw = evaluate_temperature(night_scores, 1.0)
    t_nll, table = fit_temperature(night_scores, 'nll')
    t_ece, _ = fit_temperature(night_scores, 'ece')
    assert t_nll != 1.0 and len(table) > 40
    assert evaluate_temperature(night_scores, t_nll)['nll'] < raw['nll']
    assert evaluate_temperature(night_scores, t_ece)['ece'] < raw['ece']
    # the grid's minimum is a minimum: its neighbours score no better
    assert all(row['nll'] >= evaluate_temperature(night_scores, t_nll)['nll'] - 1e-12 for row in table)
    # a temperature never changes which pixels are right
    assert torch.equal(confidence(night_scores, 1.0)[1], confidence(night_scores, t_nll)[1])


def test_vote_scores_and_fit(scenes):
    seg = Segmenter.from_pretrained(SHIPPED, device='cpu', ensemble=3, steps=4)
    data = open_dataset(f'cityscapes:{scenes}:val')
    scores = collect_scores(seg, data, pixels_per_image=512, progress=False)
    assert scores.ensemble == 3
    conf, correct = confidence(scores, 1.0)
    assert conf.shape == correct.shape == scores.target.shape
    assert 0 < float(conf.min()) <= float(conf.max()) <= 1
    temperature, _ = fit_temperature(scores, 'nll', points=9, refine=1)
    assert math.isfinite(temperature) and temperature > 0


def test_temperature_changes_confidence_not_labels(scenes, fast_segmenter):
    image = open_dataset(f'acdc:{scenes}:night:val')[0]['image']
    model = fast_segmenter.model
    x, _ = letterbox([image], model.config.image_size, torch.device('cpu'), fast_segmenter.exposure_floor)
    sampler = dataclasses.replace(fast_segmenter.sampler, confidence_temperature={})  # uncalibrated

    logits = []
    handle = model.autoencoder.class_head.register_forward_hook(lambda m, a, out: logits.append(out.float()))
    try:
        ids, conf = model.predict(x, sampler, torch.Generator().manual_seed(0))
        ids2, conf2 = model.predict(x, calibrated_sampler(sampler, 2.0), torch.Generator().manual_seed(0))
        other = calibrated_sampler(sampler, 2.0, ensemble=8)  # another setting's entry: no effect here
        ids3, conf3 = model.predict(x, other, torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    assert torch.equal(logits[0], logits[1])
    assert torch.equal(ids, ids2) and torch.equal(ids, ids3) and torch.equal(conf, conf3)
    assert torch.equal(conf, logits[0].softmax(1).max(1)[0])  # uncalibrated: exactly today's softmax
    assert torch.allclose(conf2, (logits[0] / 2).softmax(1).max(1)[0])
    assert float((conf2 < conf).float().mean()) > 0.9  # a temperature above 1 lowers the confidence

    shipped = fast_segmenter.sampler.confidence_temperature
    try:
        fast_segmenter.set_sampler(confidence_temperature={})
        plain = fast_segmenter.segment(image)
        fast_segmenter.set_sampler(confidence_temperature={1: 2.0})
        calibrated = fast_segmenter.segment(image)
    finally:
        fast_segmenter.set_sampler(confidence_temperature=shipped)
    assert np.array_equal(plain.labels, calibrated.labels)
    assert not np.array_equal(plain.confidence, calibrated.confidence)


@pytest.mark.parametrize('mapping', [{1: 0.0}, {1: -1.0}, {1: math.nan}, {1: math.inf}, {1: 1000.0},
                                     {1: True}, {1: '2'}, {0: 1.0}, {65: 1.0}, {'one': 1.0}, {True: 1.0},
                                     [1.0], 1.5])
def test_invalid_confidence_temperatures_refused(mapping):
    with pytest.raises(ValueError, match='confidence_temperature'):
        SamplerConfig(confidence_temperature=mapping).validate()
    with pytest.raises(ValueError, match='confidence_temperature'):
        calibrated_sampler(SamplerConfig(confidence_temperature=mapping), 1.0, ensemble=2)
    with pytest.raises(ValueError, match='confidence_temperature'):
        Segmenter.from_preset('tiny', device='cpu').set_sampler(confidence_temperature=mapping)


@pytest.mark.parametrize('value', [0.0, -0.5, math.nan, math.inf])
def test_calibrated_sampler_refuses_bad_fits(value):
    with pytest.raises(ValueError, match='confidence_temperature'):
        calibrated_sampler(SamplerConfig(), value)


def test_field_round_trips_and_old_configs_load(tmp_path, tiny_segmenter):
    config = CamSegConfig.from_dict(tiny_segmenter.model.config.to_dict())
    old = config.to_dict()
    del old['sampler']['confidence_temperature']  # a checkpoint written before the field existed
    assert CamSegConfig.from_dict(old).sampler.confidence_temperature == {}
    assert CamSegConfig.from_dict(old).sampler.confidence_scale() == 1.0

    model = tiny_segmenter.model
    saved = model.config.sampler
    model.config.sampler = calibrated_sampler(calibrated_sampler(saved, 1.7, ensemble=1), 0.9, ensemble=8)
    try:
        path = save_pretrained(model, tmp_path / 'ckpt')
    finally:
        model.config.sampler = saved
    stored = json.loads((path / 'config.json').read_text())['config']['sampler']['confidence_temperature']
    assert stored == {'1': 1.7, '8': 0.9}  # JSON object keys are strings
    loaded, _ = load_pretrained(path)
    sampler = loaded.config.sampler
    assert sampler.confidence_temperature == {1: 1.7, 8: 0.9}
    assert sampler.confidence_scale() == {1: 1.7, 8: 0.9}[sampler.ensemble]
    assert SamplerConfig(ensemble=8, confidence_temperature={'8': 0.9}).confidence_scale() == 0.9


def test_cli_writes_a_new_checkpoint(tmp_path, scenes, capsys):
    out = tmp_path / 'calibrated'
    before = (SHIPPED / 'config.json').read_bytes()
    code = calibrate_main(['--checkpoint', str(SHIPPED), '--data', f'generated:{scenes}', '--out', str(out),
                           '--ensemble', '1', '--steps', '4', '--max-images', '2',
                           '--pixels-per-image', '1024',
                           '--device', 'cpu'])
    assert code == 0
    assert (SHIPPED / 'config.json').read_bytes() == before  # the input is never edited
    assert (out / 'model.safetensors').read_bytes() == (SHIPPED / 'model.safetensors').read_bytes()
    header = json.loads((out / 'config.json').read_text())
    fitted = header['meta']['calibration']['confidence_temperature']
    assert set(header['meta']['calibration']['subsets']) == {'clear', 'night', 'pooled'}
    model, _ = load_pretrained(out)
    shipped, _ = load_pretrained(SHIPPED)
    assert model.config.sampler.confidence_temperature == {1: fitted}
    # the default sampler (the vote) is the input's: its own confidence is unchanged
    assert model.config.sampler.ensemble == shipped.config.sampler.ensemble
    assert model.config.sampler.confidence_scale() == shipped.config.sampler.confidence_scale()
    assert 'fitted confidence temperature' in capsys.readouterr().out

    for target in (out, SHIPPED):  # a non-empty directory and the input itself are refused
        with pytest.raises(SystemExit):
            calibrate_main(['--checkpoint', str(SHIPPED), '--data', f'generated:{scenes}',
                            '--out', str(target)])


def test_shipped_vote_is_not_recalibrated():
    """The shipped model's default sampler (the model card's vote) keeps its uncalibrated confidence."""
    model, _ = load_pretrained(SHIPPED)
    sampler = model.config.sampler
    assert sampler.ensemble == 8 and sampler.confidence_scale() == 1.0
    assert set(sampler.confidence_temperature) <= {1}
