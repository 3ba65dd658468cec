"""The training pipeline: a latent cache that is the same with workers and ranks, fused EMA, guarded resume.

The cache built with loader workers, over two gloo ranks, or twice equals the one built in the main process;
the fused EMA update equals the per-tensor one; `--resume` stops, naming what changed, unless allowed; the
class-rarity weighting of the segmenter's denoising loss follows the training labels.
"""
import json
import shutil

import numpy as np

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from camseg_core import preset
from camseg_core.checkpoint import build_model
from camseg_core.cli.synth import main as synth
from camseg_core.checkpoint import load_pretrained
from camseg_core.cli.train import main as train
from camseg_core.data.augment import AugmentConfig
from camseg_core.labels import NUM_CLASSES
from camseg_core.models.baseline import PixelClassifier, baseline_preset
from camseg_core.training import TrainConfig, Trainer
from camseg_core.training.cache import encode_dataset
from camseg_core.training.data import PairData, class_frequencies, open_training_data
from camseg_core.training.loop import Dist
from camseg_core.training.resume import saved_settings
from camseg_core.training.stages import BaselineStep, StageOptions, rarity_weights, step_module

CPU = torch.device('cpu')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('synth')
    assert synth(['--out', str(root), '--num', '3', '--size', '48x96', '--conditions', 'clear']) == 0
    return f'generated:{root}'


def tiny_camseg(pixel_stem=0):
    """Return a random tiny CAM-Seg at 32x64, the same in every process."""
    config = preset('tiny')
    config.image_size = (32, 64)
    config.transformer.pixel_stem = pixel_stem
    torch.manual_seed(0)
    return build_model('camseg', config.to_dict()).eval()


def assert_same_cache(a, b):
    assert torch.equal(a.image_tokens, b.image_tokens) and torch.equal(a.mask_tokens, b.mask_tokens)


def test_cache_is_the_same_with_loader_workers_and_across_runs(data):
    model, dataset = tiny_camseg(), open_training_data([data])
    main, stats = encode_dataset(model, dataset, 4, CPU, copies=1, seed=5, workers=0)
    workers, stats2 = encode_dataset(model, dataset, 4, CPU, copies=1, seed=5, workers=2)
    again, _ = encode_dataset(model, dataset, 4, CPU, copies=1, seed=5, workers=2)
    assert len(main) == 2 * len(dataset) == stats.items and stats2.workers == 2
    assert_same_cache(main, workers)
    assert_same_cache(workers, again)
    bf16, _ = encode_dataset(model, dataset, 4, CPU, copies=0, precision='bf16')
    assert bf16.image_tokens.dtype == torch.float32
    assert torch.allclose(bf16.image_tokens, main.image_tokens[:len(dataset)], atol=0.1, rtol=0.1)


def _encode_on_rank(rank, world, init_file, data, out):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world)
    try:
        cache, _ = encode_dataset(tiny_camseg(pixel_stem=32), open_training_data([data]), 2, CPU, copies=1,
                                  seed=5, rank=rank, world=world)
        torch.save({'image': cache.image_tokens, 'mask': cache.mask_tokens, 'pixels': cache.images},
                   f'{out}.{rank}')
    finally:
        dist.destroy_process_group()


def test_cache_is_shared_over_two_gloo_ranks(tmp_path, data):
    model = tiny_camseg(pixel_stem=32)
    single, _ = encode_dataset(model, open_training_data([data]), 4, CPU, copies=1, seed=5)
    out = tmp_path / 'cache'
    mp.spawn(_encode_on_rank, args=(2, str(tmp_path / 'init'), data, str(out)), nprocs=2)
    ranks = [torch.load(f'{out}.{rank}') for rank in (0, 1)]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ('image', 'mask', 'pixels'))  # every rank: all
    assert torch.equal(ranks[0]['pixels'], single.images)  # uint8, gathered through the host
    # in item order; equal up to rounding (other batches and thread counts sum in another order)
    assert torch.allclose(ranks[0]['image'], single.image_tokens, atol=1e-5)
    assert torch.allclose(ranks[0]['mask'], single.mask_tokens, atol=1e-5)


def test_fused_ema_update_equals_the_per_tensor_one(tmp_path):
    torch.manual_seed(0)
    model = PixelClassifier(baseline_preset('micro'))
    config = TrainConfig(out=tmp_path, steps=1, ema=0.99, sample_every=0)
    trainer = Trainer(config, Dist(), model, BaselineStep(model), None, None, {'stage': 'baseline'})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        for b in model.buffers():
            b.add_(1)
    trainer.step = 7
    decay = min(config.ema, 8 / 17)
    expected = {n: e.clone().lerp_(dict(model.named_parameters())[n], 1 - decay)
                for n, e in trainer.ema.named_parameters()}
    trainer._update_ema()
    assert all(torch.equal(e, expected[n]) for n, e in trainer.ema.named_parameters())
    assert all(torch.equal(e, b) for e, b in zip(trainer.ema.buffers(), model.buffers()))


def run_args(data, out, *extra):
    return ['baseline', '--data', data, '--preset', 'micro', '--out', str(out), '--steps', '3',
            '--save-every', '2', '--sample-every', '0', '--batch-size', '2', '--workers', '0',
            '--warmup', '1', '--image-size', '32x64', *extra]


@pytest.fixture(scope='module')
def saved_run(tmp_path_factory, data):
    """Return a baseline run stopped after its step-2 checkpoint."""
    out = tmp_path_factory.mktemp('run') / 'run'
    assert train(run_args(data, out, '--stop-after', '2')) == 0
    return out


@pytest.fixture
def run(tmp_path, saved_run):
    return shutil.copytree(saved_run, tmp_path / 'run')


def resume_error(capsys, data, out, *extra, image_size='32x64'):
    args = run_args(data, out, '--resume', *extra)
    args[args.index('--image-size') + 1] = image_size
    with pytest.raises(SystemExit):
        train(args)
    return capsys.readouterr().err


@pytest.mark.parametrize('flags, name', [(['--batch-size', '1'], 'batch_size'), (['--seed', '3'], 'seed'),
                                         (['--lr', '0.5'], 'lr'), (['--no-augment'], 'augment'),
                                         (['--weather', '0.6'], 'weather')])
def test_resume_with_changed_settings_stops_naming_them(capsys, data, run, flags, name):
    err = resume_error(capsys, data, run, *flags)
    assert f'changes {name} (' in err and f'--allow-change {name}' in err


def test_resume_with_other_data_world_size_or_image_size_stops(capsys, tmp_path, data, run):
    assert 'changes data (' in resume_error(capsys, data, run, '--data', data)
    state = json.loads((run / 'train_state.json').read_text())
    state['settings']['world_size'] = 2  # as if saved by two processes
    (run / 'train_state.json').write_text(json.dumps(state))
    assert 'changes world_size (2 -> 1)' in resume_error(capsys, data, run)
    err = resume_error(capsys, data, run, '--allow-change', 'world_size', image_size='64x128')
    assert 'image_size ([32, 64] -> [64, 128])' in err and '--init' in err  # never allowed
    assert 'unknown setting(s) batch' in resume_error(capsys, data, run, '--allow-change', 'batch')
    del state['settings']  # a state from before settings were stored: checked against what it recorded
    (run / 'train_state.json').write_text(json.dumps(state))
    assert saved_settings(state)['batch_size'] == 2
    assert 'changes batch_size (2 -> 1)' in resume_error(capsys, data, run, '--batch-size', '1')


def test_allowed_changes_resume(capsys, data, run):
    assert train([*run_args(data, run, '--resume', '--batch-size', '1', '--allow-change', 'batch_size')]) == 0
    state = json.loads((run / 'train_state.json').read_text())
    assert state['step'] == 3 and state['settings']['batch_size'] == 1  # the new settings are recorded
    assert 'batch_size 2 -> 1' in capsys.readouterr().out


def test_resume_into_fp16_without_a_scaler_state(capsys, data, run):
    err = resume_error(capsys, data, run, '--precision', 'fp16')
    assert "precision ('fp32' -> 'fp16')" in err and 'gradient scaler' in err and 'Traceback' not in err
    header = json.loads((run / 'train_state.json').read_text())
    model = build_model(header['model_type'], header['model_config'])
    config = TrainConfig(out=run, steps=3, precision='fp16', sample_every=0)
    trainer = Trainer(config, Dist(), model, BaselineStep(model), None, None, {'stage': 'baseline'})
    with pytest.raises(ValueError, match='no gradient scaler state'):
        trainer.resume()
    assert trainer.resume(fresh_scaler=True) == 2
    assert train(run_args(data, run, '--resume', '--precision', 'fp16', '--allow-change', 'precision')) == 0
    state = json.loads((run / 'train_state.json').read_text())
    assert state['step'] == 3 and state['scaler']['scale'] > 0


def test_class_rarity_weights_follow_the_training_labels(data):
    dataset = open_training_data([data])
    shares = class_frequencies(dataset)
    counts = sum(np.bincount(item['label'][item['label'] < NUM_CLASSES], minlength=NUM_CLASSES)
                 for item in (dataset[i] for i in range(len(dataset))))
    assert np.allclose(shares, counts / counts.sum())
    weights = rarity_weights(np.array([0.5, 0.3, 0.1, 0.1, 1e-5, 0.0]), 0.5).numpy()
    # (share / median 0.1) ** -0.5: the common classes weigh less, the rarest hits the clip, absent weighs 1
    assert np.allclose(weights, [0.4472136, 0.5773503, 1.0, 1.0, 10.0, 1.0])
    for opts in (StageOptions('vae', rare_weight=0.5), StageOptions('segmenter', rare_weight=-1)):
        with pytest.raises(ValueError, match='rare-weight'):
            step_module(opts, tiny_camseg(), dataset)


def test_token_weights_weigh_the_denoising_loss():
    model = tiny_camseg().train()
    tokens = torch.randn(2, model.grid[0] * model.grid[1], 16)
    image = model.image_condition(torch.zeros(2, 3, 32, 64), torch.randn_like(tokens))

    def loss(weight):
        torch.manual_seed(3)
        return model.loss(image, tokens, token_weight=weight)
    ones = torch.ones(tokens.shape[:2])
    assert torch.equal(loss(None), loss(ones)) and torch.equal(loss(ones), loss(4 * ones))  # a weighted mean
    assert not torch.allclose(loss(None), loss(torch.rand(tokens.shape[:2])))


def test_segmenter_trains_with_rarity_weights_cached_or_not(tmp_path, data):
    vae = tmp_path / 'vae'
    fast = ['--image-size', '32x64', '--batch-size', '2', '--workers', '0', '--warmup', '1',
            '--sample-every', '0']
    assert train(['vae', '--data', data, '--out', str(vae), '--steps', '1', '--preset', 'tiny', *fast]) == 0
    for name, extra in (('cached', ['--cache-latents']), ('plain', [])):
        out = tmp_path / name
        assert train(['segmenter', '--init', str(vae), '--data', data, '--out', str(out), '--steps', '2',
                      '--rare-weight', '0.5', *fast[2:], *extra]) == 0
        weights = load_pretrained(out)[1]['meta']['class_weights']
        expected = rarity_weights(class_frequencies(open_training_data([data])), 0.5)
        assert np.allclose(weights, expected.numpy(), atol=1e-4) and len(weights) == NUM_CLASSES


def test_low_light_and_weather_options_reach_the_augmentation(data, tmp_path, capsys):
    dataset = open_training_data([data])
    dark, plain = (PairData(dataset, (32, 64), True, 0, AugmentConfig(low_light=p)) for p in (1.0, 0.0))
    assert all(dark[k]['image'].mean() < plain[k]['image'].mean() - 0.2 for k in range(len(dataset)))
    weather = PairData(dataset, (32, 64), True, 0, StageOptions('vae', weather=0.6).augmentation())
    assert weather.augment.config.weather == 0.6 and weather.augment.config.crop == (32, 64)
    for flag, name in (('--low-light', 'low_light'), ('--weather', 'weather')):
        with pytest.raises(SystemExit):
            train(run_args(data, tmp_path / 'run', flag, '2'))
        assert f'{name} is a probability, got 2.0' in capsys.readouterr().err
