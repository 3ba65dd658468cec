"""The discriminative baseline: config round trip, predict, loss, learning, checkpoint + Segmenter."""
import numpy as np
import pytest
import torch

from camseg_core import Segmenter, save_pretrained
from camseg_core.labels import IGNORE_INDEX, NUM_CLASSES
from camseg_core.models.baseline import BASELINE_PRESETS, BaselineConfig, PixelClassifier, baseline_preset


def micro():
    torch.manual_seed(0)
    return PixelClassifier(baseline_preset('micro'))


def test_config_round_trip_and_errors():
    for name in BASELINE_PRESETS:
        config = baseline_preset(name)
        assert BaselineConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match='unknown BaselineConfig keys'):
        BaselineConfig.from_dict({'image_size': [32, 64], 'depth': 3})
    with pytest.raises(ValueError, match='multiples of the stride'):
        BaselineConfig(image_size=(30, 64), widths=(16, 32, 64)).validate()
    with pytest.raises(ValueError, match='norm_num_groups'):
        BaselineConfig(widths=(10, 20)).validate()
    with pytest.raises(ValueError, match='multiples of the stride 8'):
        BaselineConfig(image_size=(36, 64), widths=(16, 32), stem_stride=4).validate()
    with pytest.raises(ValueError, match='stem_stride'):
        BaselineConfig(widths=(16, 32), stem_stride=0).validate()
    with pytest.raises(ValueError, match='unknown baseline preset'):
        baseline_preset('huge')


def test_predict_contract():
    model = micro().eval()
    ids, conf = model.predict(torch.rand(2, 3, 32, 64) * 2 - 1)
    assert ids.shape == conf.shape == (2, 32, 64)
    assert ids.dtype == torch.uint8 and conf.dtype == torch.float32
    assert int(ids.max()) < NUM_CLASSES
    assert float(conf.min()) >= 1.0 / NUM_CLASSES - 1e-6 and float(conf.max()) <= 1.0


def test_strided_stem_predicts_at_full_resolution():
    torch.manual_seed(0)
    model = PixelClassifier(BaselineConfig(image_size=(32, 64), widths=(16, 32), stem_stride=4)).eval()
    assert model(torch.zeros(1, 3, 32, 64)).shape == (1, NUM_CLASSES, 32, 64)
    ids, conf = model.predict(torch.rand(2, 3, 32, 64) * 2 - 1)
    assert ids.shape == conf.shape == (2, 32, 64)
    assert baseline_preset('tiny').stride == 32


def test_loss_ignores_255():
    model = micro()
    x = torch.rand(1, 3, 32, 64) * 2 - 1
    labels = torch.full((1, 32, 64), IGNORE_INDEX)
    loss = model.loss(x, labels)
    assert torch.isfinite(loss) and loss.item() == 0.0
    labels[0, :16] = 3
    half = model.loss(x, labels)
    logits = model(x)[0, :, :16].permute(1, 2, 0).reshape(-1, NUM_CLASSES)
    expected = torch.nn.functional.cross_entropy(logits, torch.full((16 * 64,), 3))
    assert torch.allclose(half, expected, atol=1e-5)


def test_learns_a_fixed_batch_and_round_trips_through_segmenter(tmp_path, fit):
    model = micro()
    gen = torch.Generator().manual_seed(0)
    labels = torch.zeros(2, 32, 64, dtype=torch.long)
    labels[:, :12] = 10  # sky
    labels[:, 12:22] = 2  # building
    labels[:, 22:] = 0  # road
    colours = torch.rand(NUM_CLASSES, 3, generator=gen) * 2 - 1
    noise = 0.1 * torch.randn(2, 3, 32, 64, generator=gen)
    images = (colours[labels].permute(0, 3, 1, 2) + noise).clamp(-1, 1)
    losses = fit(model.parameters(), lambda: model.loss(images, labels), steps=30, lr=1e-2)
    assert np.mean(losses[-3:]) < 0.3 * np.mean(losses[:3])

    save_pretrained(model, tmp_path / 'baseline', meta={'note': 'test'})
    seg = Segmenter.from_pretrained(tmp_path / 'baseline', device='cpu')
    assert seg.model.model_type == 'baseline'
    rgb = ((images + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    outs = seg.segment(list(rgb))
    for out, lab in zip(outs, labels.numpy()):
        assert out.labels.shape == (32, 64) and out.confidence.dtype == np.float32
        assert (out.labels == lab).mean() > 0.9
