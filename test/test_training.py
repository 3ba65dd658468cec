"""camseg-train: real optimisation steps, loadable checkpoints, exact resume, clear stops, two gloo ranks.

Every stage saves a checkpoint the API loads; resume after an interruption reproduces an uninterrupted run
exactly; a non-finite loss stops with a clear error; torchrun with two gloo processes keeps the ranks in sync.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from camseg_core import Segmenter, load_pretrained, preset
from camseg_core.checkpoint import CheckpointError, build_model, save_pretrained
from camseg_core.imageops import from_bytes, to_bytes
from camseg_core.cli.synth import main as synth
from camseg_core.cli.train import main as train
from camseg_core.models.baseline import PixelClassifier, baseline_preset
from camseg_core.labels import encode_maskige
from camseg_core.training import TrainConfig, Trainer
from camseg_core.training.data import PairData, make_batches, open_training_data
from camseg_core.training.loop import Dist
from camseg_core.training.build import build_stage_model, calibrate_latent_scale, encoder_trained, init_stage
from camseg_core.training.cache import encode_dataset
from camseg_core.training.stages import BaselineStep, StageOptions, step_module

FAST = ['--image-size', '32x64', '--batch-size', '2', '--workers', '0', '--warmup', '1']


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('synth')
    assert synth(['--out', str(root), '--num', '4', '--size', '48x96', '--conditions', 'clear,snow']) == 0
    return f'generated:{root}'


def segment_once(path):
    seg = Segmenter.from_pretrained(path, device='cpu', **({'steps': 2} if 'vae' in str(path) else {}))
    img = np.random.default_rng(0).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    out = seg.segment(img)
    assert out.labels.shape == (40, 70) and out.confidence.shape == (40, 70)
    return seg


def test_vae_then_segmenter(tmp_path, data):
    vae, seg = tmp_path / 'vae', tmp_path / 'seg'
    assert train(['vae', '--data', data, '--out', str(vae), '--steps', '2', '--save-every', '2',
                  '--sample-every', '2', *FAST]) == 0
    segment_once(vae)
    torch.manual_seed(0)  # the CLI's initial weights
    config = preset('tiny')
    config.image_size = (32, 64)
    fresh = build_model('camseg', config.to_dict()).state_dict()
    trained, header = load_pretrained(vae)
    assert header['meta']['stage'] == 'vae' and header['meta']['step'] == 2
    state = trained.state_dict()
    assert any(not torch.equal(state[k], fresh[k]) for k in state if k.startswith('autoencoder.'))
    assert all(torch.equal(state[k], fresh[k]) for k in state if not k.startswith('autoencoder.'))
    assert (vae / 'samples' / 'step_0000002.png').is_file() and list((vae / 'tb').glob('events.*'))

    assert train(['segmenter', '--init', str(vae), '--data', data, '--out', str(seg), '--steps', '2',
                  '--save-every', '2', '--sample-every', '2', '--cache-latents', *FAST[2:]]) == 0
    scale = json.loads((seg / 'config.json').read_text())['config']['autoencoder']['scaling_factor']
    assert scale != config.autoencoder.scaling_factor  # calibrated to the trained autoencoder's latents
    after = Segmenter.from_pretrained(seg, device='cpu').model.state_dict()
    assert all(torch.equal(after[k], state[k]) for k in state if k.startswith('autoencoder.'))  # frozen
    assert any(not torch.equal(after[k], state[k]) for k in state if k.startswith('transformer.'))
    segment_once(seg)


def test_segmenter_options_token_classes_image_and_pixel_stem(tmp_path, data, capsys):
    vae, cached, plain = tmp_path / 'vae', tmp_path / 'cached', tmp_path / 'plain'
    assert train(['vae', '--data', data, '--out', str(vae), '--steps', '1', '--sample-every', '0',
                  *FAST]) == 0
    args = ['segmenter', '--init', str(vae), '--data', data, '--steps', '2', '--sample-every', '0',
            '--class-weight', '0.5', '--image-stem', '2', '--pixel-stem', '32', *FAST[2:]]
    init = build_stage_model(StageOptions('segmenter', init=vae, image_size=(32, 64), class_weight=0.5,
                                          image_stem=2, pixel_stem=32))
    for out, extra in ((cached, ['--cache-latents']), (plain, [])):
        assert train([*args, '--out', str(out), *extra]) == 0
        model, header = load_pretrained(out)
        assert header['config']['transformer']['class_weight'] == 0.5
        assert header['config']['transformer']['image_stem'] == 2 and len(model.transformer.image_stem) == 4
        assert header['config']['transformer']['pixel_stem'] == 32
        assert model.transformer.image_proj.in_features == 16 + 32  # KL channels, then the pixel stem's
        for name in ('classifier', 'image_stem.3', 'pixel_stem.0'):  # all trained, cached or not
            part = model.transformer.get_submodule(name)
            assert not torch.equal(part.weight, init.transformer.get_submodule(name).weight)
        segment_once(out)
    trained = load_pretrained(cached)[0].state_dict()
    for weight in (0.0, 0.1):  # an --init run may drop the token classifier or change its weight
        tuned = build_stage_model(StageOptions('segmenter', init=cached, class_weight=weight, image_stem=2,
                                               pixel_stem=32))
        assert tuned.config.transformer.class_weight == weight
        assert (tuned.transformer.classifier is None) == (weight == 0)
        kept = tuned.state_dict()
        assert all(torch.equal(kept[k], trained[k]) for k in kept)  # every weight it keeps is the trained one
    with pytest.raises(ValueError, match='image-stem'):  # set only when the segmenter starts from a vae run
        build_stage_model(StageOptions('segmenter', init=cached, class_weight=0.5, image_stem=1,
                                       pixel_stem=32))
    with pytest.raises(SystemExit):  # the saved model fixes it
        train([*args[:-len(FAST[2:])], '--image-stem', '1', *FAST[2:], '--out', str(cached), '--resume'])
    assert 'changes image_stem (2 -> 1), which the saved model fixes' in capsys.readouterr().err


def test_vae_decoder_only_keeps_the_tokens_and_the_segmenter(tmp_path, data):
    vae, seg, tuned = tmp_path / 'vae', tmp_path / 'seg', tmp_path / 'tuned'
    assert train(['vae', '--data', data, '--out', str(vae), '--steps', '1', '--sample-every', '0',
                  *FAST]) == 0
    assert train(['segmenter', '--init', str(vae), '--data', data, '--out', str(seg), '--steps', '1',
                  '--sample-every', '0', *FAST[2:]]) == 0
    assert train(['vae', '--init', str(seg), '--data', data, '--out', str(tuned), '--steps', '2',
                  '--sample-every', '0', '--decoder-only', '--class-weight', '1', *FAST[2:]]) == 0
    before, after = load_pretrained(seg)[0].state_dict(), load_pretrained(tuned)[0].state_dict()
    kept = ('autoencoder.vae.encoder.', 'autoencoder.vae.quant_conv.', 'transformer.', 'head.')
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(kept))
    for trained in ('autoencoder.vae.decoder.', 'autoencoder.class_head.'):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(trained))
    segment_once(tuned)
    assert init_stage(tuned) == 'segmenter'  # a later segmenter run continues its transformer
    on_generated = tmp_path / 'on_generated'
    assert train(['vae', '--init', str(seg), '--data', data, '--out', str(on_generated), '--steps', '2',
                  '--sample-every', '0', '--decoder-only', '--class-weight', '1', '--generated', '1',
                  *FAST[2:]]) == 0
    after = load_pretrained(on_generated)[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(kept))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith('autoencoder.class_h'))
    refused = [(StageOptions('segmenter', init=seg, decoder_only=True), 'only applies to the vae stage'),
               (StageOptions('baseline', decoder_only=True), 'only applies to the vae stage'),
               (StageOptions('vae', init=vae, decoder_only=True, class_weight=1), 'a segmenter checkpoint'),
               (StageOptions('vae', decoder_only=True, class_weight=1), 'a segmenter checkpoint'),
               (StageOptions('vae', init=seg, decoder_only=True), 'class-weight > 0'),
               (StageOptions('vae', init=seg, decoder_only=True, class_weight=1, image_size=(64, 128)),
                'drop --image-size')]
    for opts, message in refused:
        with pytest.raises(ValueError, match=message):
            build_stage_model(opts)
    for opts in (StageOptions('vae', generated=0.5), StageOptions('vae', decoder_only=True, generated=1.5)):
        with pytest.raises(ValueError, match='--generated is a share in'):
            step_module(opts, load_pretrained(seg)[0])


def test_vae_fine_tuned_whole_keeps_the_generator_for_the_next_segmenter(tmp_path, data):
    """A whole-autoencoder run from a segmenter keeps its generator; the next segmenter continues it."""
    vae, seg, whole, cont = (tmp_path / name for name in ('vae', 'seg', 'whole', 'cont'))
    assert train(['vae', '--data', data, '--out', str(vae), '--steps', '1', '--sample-every', '0',
                  *FAST]) == 0
    assert train(['segmenter', '--init', str(vae), '--data', data, '--out', str(seg), '--steps', '2',
                  '--sample-every', '0', *FAST[2:]]) == 0
    assert train(['vae', '--init', str(seg), '--data', data, '--out', str(whole), '--steps', '2',
                  '--sample-every', '0', '--mask-weight', '4', '--class-weight', '1', *FAST[2:]]) == 0
    before, after = load_pretrained(seg)[0].state_dict(), load_pretrained(whole)[0].state_dict()
    encoder = [k for k in before if k.startswith('autoencoder.vae.encoder.')]
    assert any(not torch.equal(before[k], after[k]) for k in encoder)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(('transformer.', 'head.')))
    assert init_stage(whole) == 'segmenter' and encoder_trained(whole)
    assert init_stage(vae) == 'vae' and encoder_trained(vae) and not encoder_trained(seg)
    with pytest.raises(ValueError, match='train the segmenter on its new tokens first'):
        build_stage_model(StageOptions('vae', init=whole, decoder_only=True, class_weight=1))
    start = build_stage_model(StageOptions('segmenter', init=whole)).state_dict()
    assert all(torch.equal(start[k], after[k]) for k in after)  # the generator goes on from the segmenter's
    fresh = build_stage_model(StageOptions('segmenter', init=vae)).state_dict()
    assert any(not torch.equal(fresh[k], after[k]) for k in after if k.startswith('transformer.'))
    assert train(['segmenter', '--init', str(whole), '--data', data, '--out', str(cont), '--steps', '1',
                  '--sample-every', '0', *FAST[2:]]) == 0
    scale = {path: json.loads((path / 'config.json').read_text())['config']['autoencoder']['scaling_factor']
             for path in (whole, cont)}
    assert scale[cont] != scale[whole]  # recalibrated to the fine-tuned encoder's latents
    segment_once(cont)


def test_decoder_learns_to_decode_generated_tokens(tmp_path, data):
    """--generated: the decoder is optimised on the model's own generated tokens (fixed here by the seed)."""
    vae, seg = tmp_path / 'vae', tmp_path / 'seg'
    assert train(['vae', '--data', data, '--out', str(vae), '--steps', '1', '--sample-every', '0',
                  *FAST]) == 0
    assert train(['segmenter', '--init', str(vae), '--data', data, '--out', str(seg), '--steps', '1',
                  '--sample-every', '0', *FAST[2:]]) == 0
    opts = StageOptions('vae', init=seg, decoder_only=True, class_weight=1.0, generated=1.0)
    model = build_stage_model(opts)
    model.config.sampler.steps = 2
    step = step_module(opts, model)
    assert model.capture_graphs is False  # on CUDA too: no capture beside the pin-memory thread
    batch = next(iter(make_batches(PairData(open_training_data([data]), (32, 64), False, 0), 4, 0, 1, 0, 0,
                                   False, False)(0)))
    torch.manual_seed(0)
    generated = step.generate(batch['image'])
    assert generated.shape == (4, 16, 4, 8)  # latents of the token grid
    with torch.no_grad():
        encoded = model.autoencoder.encode(encode_maskige(batch['label']))
        expected, _ = model.autoencoder.mask_decoder_loss(generated, batch['label'], 1.0)
        torch.manual_seed(0)
        got, _ = step(batch)
    assert not torch.allclose(generated, encoded, atol=1e-2)  # not the encoder's tokens of the labels
    assert torch.allclose(got, expected)  # the step decodes exactly what the generator produced
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for _ in range(25):
        torch.manual_seed(0)  # the same generated tokens at every step
        loss, logs = step(batch)
        assert set(logs) == {'recon_generated', 'class_ce_generated', 'class_dice_generated'}
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith('autoencoder.vae.dec')
               and not n.startswith('autoencoder.class_head') and not n.startswith('autoencoder.vae.post'))
    half = step_module(StageOptions('vae', init=seg, decoder_only=True, class_weight=1.0, generated=0.5),
                       model)
    _, logs = half(batch)  # two rows decoded from generated tokens, two from the encoder's
    assert {'recon_generated', 'recon_mask', 'class_ce'} <= set(logs)


def test_cached_images_round_trip_exactly():
    images = torch.arange(256, dtype=torch.float32).view(1, 1, 16, 16) / 127.5 - 1  # as the loader makes them
    assert torch.equal(from_bytes(to_bytes(images)), images)


@pytest.mark.parametrize('field, value, message', [
    ('image_stem', -1, 'image_stem must be an integer'), ('class_weight', -0.5, 'class_weight must be >= 0'),
    ('pixel_stem', 48, 'pixel_stem must be 0 or a positive multiple of 32')])
def test_segmenter_options_are_validated(field, value, message):
    config = preset('tiny')
    setattr(config.transformer, field, value)
    with pytest.raises(ValueError, match=message):
        config.validate()
    config = preset('tiny')
    config.transformer.width, config.transformer.num_heads, config.transformer.image_stem = 36, 4, 1
    with pytest.raises(ValueError, match='divisible by 8'):
        config.validate()


def test_image_stem_starts_as_the_linear_projection():
    config = preset('tiny')
    config.image_size = (32, 64)
    torch.manual_seed(0)
    plain = build_model('camseg', config.to_dict()).eval()
    config.transformer.image_stem = 3
    stem = build_model('camseg', config.to_dict()).eval()
    stem.load_state_dict(plain.state_dict(), strict=False)  # the same weights besides the stem
    tokens = torch.randn(2, 32, 16)
    masked = torch.ones(2, 32, dtype=torch.bool)
    with torch.no_grad():
        same = plain.transformer(tokens, tokens, masked), stem.transformer(tokens, tokens, masked)
    assert torch.equal(*same)


def test_token_class_loss_term(model_and_data):
    model, dataset = model_and_data
    config = preset('tiny')
    config.image_size, config.transformer.class_weight = (32, 64), 2.0
    torch.manual_seed(0)
    with_classes = build_model('camseg', config.to_dict())
    cache, _ = encode_dataset(with_classes, dataset, 4, torch.device('cpu'), False)
    item = cache[0]
    assert item['token_classes'].shape == (4 * 8, 19)  # (32/8) x (64/8) tokens, 19 classes
    batch = {k: torch.stack([cache[i][k] for i in range(len(cache))]) for k in item}
    parts = {}
    torch.manual_seed(1)
    total = with_classes.loss(batch['image_tokens'], batch['mask_tokens'], batch['token_classes'], parts)
    assert set(parts) == {'diffusion', 'token_class'} and parts['token_class'] > 0
    assert torch.allclose(total, parts['diffusion'] + 2.0 * parts['token_class'])
    torch.manual_seed(1)  # without class mixes the loss is the paper's denoising loss alone
    assert torch.equal(with_classes.loss(batch['image_tokens'], batch['mask_tokens']), parts['diffusion'])
    assert 'token_classes' not in encode_dataset(model, dataset, 4, torch.device('cpu'), False)[0][0]


def test_resume_reproduces_an_uninterrupted_run(tmp_path, data):
    args = ['baseline', '--data', data, '--preset', 'micro', '--steps', '4', '--save-every', '2',
            '--sample-every', '0', *FAST[2:]]
    full, cut = tmp_path / 'full', tmp_path / 'cut'
    assert train([*args, '--out', str(full)]) == 0
    assert train([*args, '--out', str(cut), '--stop-after', '3']) == 0  # "killed" after step 3
    assert json.loads((cut / 'train_state.json').read_text())['step'] == 2  # step 3 is lost
    with pytest.raises(SystemExit):  # an existing run is never overwritten silently
        train([*args, '--out', str(cut)])
    assert train([*args, '--out', str(cut), '--resume']) == 0
    for name in ('model.safetensors', 'train_state/step_000000004.safetensors'):
        a, b = load_file(str(full / name)), load_file(str(cut / name))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name  # model, EMA, optimizer moments, RNG
    state = load_file(str(cut / 'train_state/step_000000004.safetensors'))
    assert any(k.startswith('optim.state.') for k in state)
    segment_once(cut)


def test_non_finite_loss_stops_with_the_step(tmp_path, data, capsys):
    out = tmp_path / 'nan'
    code = train(['baseline', '--data', data, '--preset', 'micro', '--out', str(out), '--save-every', '1',
                  '--steps', '5', '--lr', '1e30', '--warmup', '0', *FAST[2:]])
    assert code != 0
    err = capsys.readouterr().err
    assert 'non-finite loss' in err and 'at step 2' in err and 'from step 1' in err
    # steps are read one behind their launch, yet what the non-finite step touched is never saved
    assert json.loads((out / 'train_state.json').read_text())['step'] == 1
    assert all(torch.isfinite(t).all() for t in load_file(str(out / 'model.safetensors')).values())


def test_loss_decreases_on_a_fixed_batch(tmp_path):
    torch.manual_seed(0)
    model = PixelClassifier(baseline_preset('micro'))
    labels = torch.zeros(2, 32, 64, dtype=torch.long)
    labels[:, :10], labels[:, 10:20], labels[:, 20:] = 10, 8, 0
    colours = torch.rand(19, 3) * 2 - 1
    batch = {'image': colours[labels].permute(0, 3, 1, 2).contiguous(), 'label': labels}
    config = TrainConfig(out=tmp_path, steps=30, lr=1e-2, warmup=0, schedule='constant', save_every=30,
                         sample_every=0, ema=0.9)
    batches = lambda start: iter(lambda: batch, None)  # noqa: E731  the same batch forever
    trainer = Trainer(config, Dist(), model, BaselineStep(model), batches, None, {'stage': 'baseline'})
    assert trainer.train() == 30
    losses = trainer.losses
    assert np.mean(losses[-3:]) < 0.3 * np.mean(losses[:3])
    assert (tmp_path / 'model.safetensors').is_file()


def test_learning_rate_schedule():
    config = TrainConfig(out=Path('.'), steps=100, lr=1.0, warmup=10)
    assert config.lr_at(0) == pytest.approx(0.1) and config.lr_at(9) == pytest.approx(1.0)
    assert config.lr_at(10) == pytest.approx(1.0) and config.lr_at(99) < 0.01
    with pytest.raises(ValueError, match='schedule'):
        TrainConfig(out=Path('.'), schedule='step').validate()


def test_two_gloo_processes_stay_in_sync(tmp_path, data):
    out = tmp_path / 'ddp'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           '-m', 'camseg_core.cli.train', 'baseline', '--data', data, '--preset', 'micro', '--out', str(out),
           '--steps', '3', '--save-every', '2', '--sample-every', '2', '--batch-size', '1', '--workers', '0']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'ranks in sync: True' in proc.stdout
    state = json.loads((out / 'train_state.json').read_text())
    assert state['world_size'] == 2 and state['step'] == 3
    assert len(list((out / 'tb').glob('events.*'))) == 1  # only rank 0 logs
    tensors = load_file(str(out / state['tensors']))
    assert 'rng.0.cpu' in tensors and 'rng.1.cpu' in tensors
    segment_once(out)


def test_resume_with_cached_latents_uses_the_trained_autoencoder(tmp_path, data):
    vae = tmp_path / 'vae'
    assert train(['vae', '--data', data, '--out', str(vae), '--steps', '2', '--save-every', '2',
                  '--sample-every', '0', *FAST]) == 0
    args = ['segmenter', '--init', str(vae), '--data', data, '--steps', '4', '--save-every', '2',
            '--sample-every', '0', '--cache-latents', '--cache-copies', '1', *FAST[2:]]
    full, cut = tmp_path / 'full', tmp_path / 'cut'
    assert train([*args, '--out', str(full)]) == 0
    assert train([*args, '--out', str(cut), '--stop-after', '3']) == 0
    assert train([*args, '--out', str(cut), '--resume']) == 0
    a, b = load_file(str(full / 'model.safetensors')), load_file(str(cut / 'model.safetensors'))
    # the resumed run re-encodes its cache with the restored autoencoder, so it continues exactly
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith('transformer.'))


@pytest.fixture
def model_and_data(data):
    """Return a random tiny CAM-Seg at 32x64 and the generated training items."""
    config = preset('tiny')
    config.image_size = (32, 64)
    torch.manual_seed(0)
    return build_model('camseg', config.to_dict()).eval(), open_training_data([data])


def test_cache_copies_adds_seeded_augmented_items(model_and_data):
    model, dataset = model_and_data
    n, cpu = len(dataset), torch.device('cpu')
    a, stats = encode_dataset(model, dataset, 4, cpu, False, copies=2, seed=3)
    b, _ = encode_dataset(model, dataset, 4, cpu, False, copies=2, seed=3)
    plain, _ = encode_dataset(model, dataset, 4, cpu, False)
    assert stats.items == 3 * n and stats.items_per_s > 0
    assert len(a) == 3 * n and len(plain) == n
    assert torch.equal(a.image_tokens, b.image_tokens) and torch.equal(a.mask_tokens, b.mask_tokens)
    assert torch.equal(a.image_tokens[:n], plain.image_tokens)  # the letterboxed items come first
    for k in (1, 2):  # then each augmented copy, different from the plain items and from each other
        assert not torch.allclose(a.image_tokens[k * n:(k + 1) * n], plain.image_tokens)
    assert not torch.allclose(a.image_tokens[n:2 * n], a.image_tokens[2 * n:])


def test_latent_scale_calibration_gives_unit_variance_mask_tokens(model_and_data):
    model, dataset = model_and_data
    scale = calibrate_latent_scale(model, dataset, torch.device('cpu'))
    assert scale == model.config.autoencoder.scaling_factor == model.autoencoder.vae.config.scaling_factor
    labels = torch.stack([PairData(dataset, (32, 64), False, 0)[i]['label'] for i in range(len(dataset))])
    with torch.no_grad():
        std = model.autoencoder.encode(encode_maskige(labels)).std().item()
    assert abs(std - 1.0) < 1e-3
    with pytest.raises(ValueError, match='scaling_factor'):
        model.autoencoder.set_scaling_factor(0.0)


def test_segmenter_takes_only_the_autoencoder_from_a_vae_run(tmp_path):
    config = preset('tiny')
    config.image_size = (32, 64)
    torch.manual_seed(0)
    for stage in ('vae', 'segmenter'):
        save_pretrained(build_model('camseg', config.to_dict()), tmp_path / stage, meta={'stage': stage})
        weights = tmp_path / stage / 'model.safetensors'
        # only the autoencoder is kept: a vae run's transformer and head are never trained, so the segmenter
        # must not depend on them (an older transformer layout in a vae run must still initialise a segmenter)
        save_file({k: v for k, v in load_file(weights).items() if k.startswith('autoencoder.')}, weights)
    kept = load_file(tmp_path / 'vae' / 'model.safetensors')
    model = build_stage_model(StageOptions('segmenter', init=tmp_path / 'vae', image_size=(64, 128)))
    assert model.config.image_size == (64, 128) and model.grid == (8, 16)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in kept.items())
    assert not any(p.requires_grad for p in model.autoencoder.parameters())
    assert all(p.requires_grad for p in model.transformer.parameters())
    with pytest.raises(CheckpointError, match='missing'):  # a segmenter checkpoint is still loaded whole
        build_stage_model(StageOptions('segmenter', init=tmp_path / 'segmenter'))
