"""The VQ autoencoder (quantizer 'vq'): codebook tokens, codebook loss, checkpoints, ceilings, CLI flags."""
import json

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, VQModel

from camseg_core import Segmenter, load_pretrained, preset
from camseg_core.checkpoint import build_model, save_pretrained
from camseg_core.cli.synth import main as synth
from camseg_core.cli.train import main as train
from camseg_core.config import AutoencoderConfig, CamSegConfig
from camseg_core.evaluation.report import evaluate
from camseg_core.labels import CLASS_NAMES, IGNORE_INDEX, TRAIN_LABELS, encode_maskige
from camseg_core.models.autoencoder import Autoencoder


def small_config(**kw):
    return AutoencoderConfig(base_channels=8, channel_mult=(1, 2, 2, 2), layers_per_block=1,
                             norm_num_groups=4, class_head=True, **kw)


def vq_segmenter(codebook_size: int = 64) -> Segmenter:
    config = preset('tiny')
    config.image_size = (64, 128)
    config.autoencoder.quantizer, config.autoencoder.codebook_size = 'vq', codebook_size
    torch.manual_seed(0)
    return Segmenter(build_model('camseg', config.to_dict()), device='cpu', steps=2, scheduler='ddim')


def test_vq_has_the_kl_grid_and_tokens_from_its_codebook():
    torch.manual_seed(0)
    vq, kl = Autoencoder(small_config(quantizer='vq', codebook_size=32)), Autoencoder(small_config())
    assert isinstance(vq.vae, VQModel) and isinstance(kl.vae, AutoencoderKL)
    assert vq.vae.quantize.embedding.weight.shape == (32, 16)  # latent_channels wide
    images = torch.rand(3, 3, 32, 64) * 2 - 1
    with torch.no_grad():
        z = vq.encode(images)  # (3, 16, 4, 8), scaled
        assert z.shape == kl.encode(images).shape == (3, 16, 4, 8)
    tokens = (z / vq.scaling_factor).permute(0, 2, 3, 1).reshape(-1, 16)
    book = vq.vae.quantize.embedding.weight
    nearest = book[torch.cdist(tokens, book).argmin(1)]
    torch.testing.assert_close(tokens, nearest, rtol=0, atol=1e-6)  # every token is a codebook entry
    assert vq.decode(z).shape == (3, 3, 32, 64) and vq.decode_classes(z).shape == (3, 20, 32, 64)
    with pytest.raises(ValueError, match='no Gaussian posterior'):
        vq.posterior(images)


def test_vq_loss_adds_the_codebook_term_and_trains_the_codebook():
    torch.manual_seed(0)
    ae = Autoencoder(small_config(quantizer='vq', codebook_size=16))
    labels = torch.randint(0, 19, (2, 32, 64))
    images = torch.cat([torch.rand(2, 3, 32, 64) * 2 - 1, encode_maskige(labels)])
    loss, logs = ae.loss(images, kl_weight=1.0, labels=labels, class_weight=0.5, mask_weight=4.0)
    assert 'kl' not in logs and logs['vq'] > 0 and 1 <= int(logs['codes_used']) <= 16
    expected = logs['recon'] + logs['vq'] + 0.5 * (logs['class_ce'] + logs['class_dice'])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)  # the KL weight plays no part
    loss.backward()
    assert ae.vae.quantize.embedding.weight.grad.abs().sum() > 0  # the codebook learns
    assert ae.vae.encoder.conv_in.weight.grad.abs().sum() > 0  # straight through to the encoder
    kl = Autoencoder(small_config())
    _, kl_logs = kl.loss(images, labels=labels, class_weight=0.5)
    assert 'vq' not in kl_logs and kl_logs['kl'] > 0


@pytest.mark.parametrize('field, value, message', [('quantizer', 'fsq', 'quantizer'),
                                                   ('codebook_size', 1, 'codebook_size'),
                                                   ('codebook_size', 8.0, 'codebook_size')])
def test_config_rejects_bad_quantizer_settings(field, value, message):
    with pytest.raises(ValueError, match=message):
        small_config(**{field: value}).validate()


def test_checkpoints_without_a_quantizer_stay_kl():
    data = preset('tiny').to_dict()
    for key in ('quantizer', 'codebook_size'):
        del data['autoencoder'][key]
    assert CamSegConfig.from_dict(data).autoencoder.quantizer == 'kl'


def test_vq_checkpoint_round_trip_and_ceiling(tmp_path):
    seg = vq_segmenter(codebook_size=48)
    path = save_pretrained(seg.model, tmp_path / 'vq')
    assert json.loads((path / 'config.json').read_text())['config']['autoencoder']['quantizer'] == 'vq'
    loaded, _ = load_pretrained(path)
    assert isinstance(loaded.autoencoder.vae, VQModel) and loaded.config.autoencoder.codebook_size == 48
    saved = seg.model.state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in loaded.state_dict().items())
    labels = np.kron(np.random.default_rng(0).integers(0, 19, (4, 8)), np.ones((16, 16), np.int64))
    labels = labels.astype(np.uint8)
    again = Segmenter(loaded, device='cpu').autoencode_labels([labels])[0]
    first = seg.autoencode_labels([labels])[0]
    np.testing.assert_array_equal(first.labels, again.labels)
    assert first.labels.shape == (64, 128) and 0 <= first.confidence.min() <= first.confidence.max() <= 1


def test_ceilings_report_mean_precision(tmp_path):
    rng = np.random.default_rng(0)
    palette = np.array([lb.color for lb in TRAIN_LABELS] + [(0, 0, 0)] * 237, np.uint8)
    items = []
    for i in range(2):
        label = np.kron(rng.integers(0, 19, (4, 8)), np.ones((16, 16), np.int64)).astype(np.uint8)
        label[:4] = IGNORE_INDEX
        items.append({'image': palette[label], 'label': label, 'name': f'f{i}'})
    result = evaluate(vq_segmenter(), items, tmp_path / 'report', batch_size=2, corruptions=[])
    ceilings = result['datasets']['data']['ceilings']
    assert ceilings['resolution']['mean_precision'] == 1.0  # the processing size keeps these labels
    assert set(ceilings['resolution']['per_class_precision']) == set(CLASS_NAMES)
    auto = ceilings['autoencoder']
    assert 0 <= auto['mean_precision'] <= 1 and list(auto['per_class_precision']) == list(CLASS_NAMES)
    predicted = [v for v in auto['per_class_precision'].values() if v is not None]
    assert auto['mean_precision'] == pytest.approx(np.mean(predicted))
    assert 'Mean precision per class' in (tmp_path / 'report' / 'report.md').read_text()


def test_train_vae_with_a_vq_codebook(tmp_path):
    root = tmp_path / 'synth'
    assert synth(['--out', str(root), '--num', '2', '--size', '48x96', '--conditions', 'clear']) == 0
    out = tmp_path / 'vq'
    fast = ['--image-size', '32x64', '--batch-size', '2', '--workers', '0', '--warmup', '1', '--sample-every',
            '0', '--data', f'generated:{root}', '--class-weight', '1']
    vq = ['--quantizer', 'vq', '--codebook-size', '40']
    assert train(['vae', '--out', str(out), '--steps', '2', '--save-every', '2', *vq, *fast]) == 0
    model, header = load_pretrained(out)
    assert isinstance(model.autoencoder.vae, VQModel) and model.autoencoder.vae.quantize.n_e == 40
    assert header['meta']['settings']['quantizer'] == 'vq'
    assert train(['vae', '--out', str(out), '--steps', '3', '--resume', '--allow-change', 'steps', *vq,
                  *fast]) == 0
    assert load_pretrained(out)[1]['meta']['step'] == 3
    with pytest.raises(SystemExit):
        train(['segmenter', '--init', str(out), '--out', str(tmp_path / 's'), '--quantizer', 'vq', *fast])


def test_code_restart_revives_unused_codebook_entries():
    torch.manual_seed(0)
    ae = Autoencoder(small_config(quantizer='vq', codebook_size=64, code_restart=2)).train()
    labels = torch.randint(0, 19, (2, 32, 64))
    images = torch.cat([torch.rand(2, 3, 32, 64) * 2 - 1, encode_maskige(labels)])
    before = ae.vae.quantize.embedding.weight.detach().clone()
    _, logs = ae.loss(images, labels=labels)
    assert torch.equal(ae.vae.quantize.embedding.weight, before)  # one idle step: nothing reset yet
    assert int((ae.code_idle == 1).sum()) == 64 - int(logs['codes_used'])
    ae.loss(images, labels=labels)  # idle for two steps: reset to latents of the batch
    after = ae.vae.quantize.embedding.weight.detach()
    reset = (after != before).any(1)
    assert int(reset.sum()) >= 64 - 2 * int(logs['codes_used']) and (ae.code_idle[reset] == 0).all()
    with torch.no_grad():
        latents = ae.vae.encode(images).latents.permute(0, 2, 3, 1).reshape(-1, 16)
    nearest = latents[torch.cdist(after[reset], latents).argmin(1)]
    torch.testing.assert_close(after[reset], nearest, rtol=0, atol=1e-6)  # each one an encoder output
    _, logs = ae.loss(images, labels=labels)
    assert int(logs['codes_used']) > 2  # the batch now spreads over more entries
    assert 'code_idle' not in ae.state_dict()  # checkpoints keep their keys
    ae.eval()
    ae.loss(images, labels=labels)  # evaluation never resets
    assert torch.equal(ae.vae.quantize.embedding.weight, after)
