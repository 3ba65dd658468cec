"""The segmentation API: shapes, determinism, options and bad input."""
import dataclasses

import numpy as np
import pytest
import torch

from camseg_core import Segmenter, preset
from camseg_core.device import resolve_device
from camseg_core.checkpoint import build_model
from camseg_core.config import DEFAULT_EXPOSURE_FLOOR
from camseg_core.imageops import from_bytes, letterbox
from camseg_core.labels import IGNORE_INDEX
from camseg_core.models.baseline import PixelClassifier, baseline_preset
from camseg_core.models.camseg import vote
from camseg_core.models.mar import cosine_schedule


@pytest.mark.parametrize('shape', [(301, 457), (457, 301), (64, 64), (1, 5)])
def test_shapes_and_dtypes(tiny_segmenter, rng, shape):
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    out = tiny_segmenter.segment(img)
    assert out.labels.shape == shape and out.labels.dtype == np.uint8
    assert out.confidence.shape == shape and out.confidence.dtype == np.float32
    assert np.isin(out.labels, [*range(19), 255]).all()  # a class, or void
    assert 0.0 <= out.confidence.min() and out.confidence.max() <= 1.0


def test_batches_of_mixed_sizes(tiny_segmenter, rng):
    imgs = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(120, 200, 3), (90, 333, 3)]]
    outs = tiny_segmenter.segment(imgs)
    assert [o.labels.shape for o in outs] == [(120, 200), (90, 333)]
    stacked = tiny_segmenter.segment(np.stack([imgs[0], imgs[0]]))
    assert isinstance(stacked, list) and len(stacked) == 2


def test_same_seed_same_output_and_other_seed_differs(tiny_segmenter, rng):
    img = rng.integers(0, 256, (100, 180, 3), dtype=np.uint8)
    seg = tiny_segmenter
    seg.set_sampler(scheduler='ddpm', seed=3)
    a, b = seg.segment(img), seg.segment(img)
    seg.set_sampler(seed=4)
    c = seg.segment(img)
    seg.set_sampler(scheduler='ddim', seed=0)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.confidence, b.confidence)
    assert not np.array_equal(a.confidence, c.confidence)


@pytest.mark.parametrize('num_iter', [1, 3])
def test_iterative_sampling_and_ensemble(tiny_segmenter, rng, num_iter):
    img = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    seg = tiny_segmenter
    seg.set_sampler(num_iter=num_iter, ensemble=3)
    try:
        out = seg.segment(img)
    finally:
        seg.set_sampler(num_iter=1, ensemble=1)
    assert out.labels.shape == (64, 128) and 0 <= out.confidence.min() <= out.confidence.max() <= 1


def test_cosine_schedule_ends_with_everything_predicted():
    assert cosine_schedule(512, 1) == [0]
    sched = cosine_schedule(512, 8)
    assert sched[-1] == 0 and all(a > b for a, b in zip(sched, sched[1:]))
    assert cosine_schedule(3, 6)[-1] == 0


@pytest.mark.parametrize('bad, message', [
    (np.zeros((10, 10, 3), np.float32), 'dtype uint8'),
    (np.zeros((10, 10), np.uint8), 'shape'),
    (np.zeros((10, 10, 4), np.uint8), 'shape'),
    (np.zeros((0, 10, 3), np.uint8), 'zero size'),
    (np.zeros((300, 300, 3), np.uint8), 'max_pixels'),
    ('not an image', 'numpy array'),
])
def test_bad_input_raises_value_error(bad, message):
    seg = Segmenter.from_preset('tiny', device='cpu', steps=2, max_pixels=200 * 200)
    with pytest.raises(ValueError, match=message):
        seg.segment(bad)


def test_empty_batch_raises(tiny_segmenter):
    with pytest.raises(ValueError, match='empty batch'):
        tiny_segmenter.segment([])


@pytest.mark.parametrize('change', [dict(num_iter=0), dict(steps=0), dict(scheduler='euler'),
                                    dict(temperature=-1.0), dict(ensemble=0), dict(seed=-2), dict(bogus=1)])
def test_invalid_sampler_settings_are_rejected_and_old_kept(tiny_segmenter, change):
    before = dataclasses.asdict(tiny_segmenter.sampler)
    with pytest.raises(ValueError):
        tiny_segmenter.set_sampler(**change)
    assert dataclasses.asdict(tiny_segmenter.sampler) == before


def test_options_are_validated():
    model = build_model('camseg', preset('tiny').to_dict())
    with pytest.raises(ValueError, match='precision'):
        Segmenter(model, device='cpu', precision='fp8')
    with pytest.raises(ValueError, match='device'):
        resolve_device('tpu')
    for floor in (-0.1, 1.0, 'dark'):
        with pytest.raises(ValueError, match='exposure_floor'):
            Segmenter(model, device='cpu', exposure_floor=floor)
    if not __import__('torch').cuda.is_available():
        with pytest.raises(ValueError, match='CUDA is not available'):
            resolve_device('cuda')


def test_exposure_floor_brightens_dark_frames_only(rng):
    dark = rng.integers(0, 40, (48, 64, 3), dtype=np.uint8)  # mean brightness about 0.08
    bright = rng.integers(60, 200, (48, 64, 3), dtype=np.uint8)  # about 0.5
    for image in (dark, bright):
        x, _ = letterbox([image], (48, 64), torch.device('cpu'), exposure_floor=0.0)
        assert torch.equal(x, from_bytes(torch.from_numpy(image).permute(2, 0, 1)[None].float()))
    lifted, _ = letterbox([dark], (48, 64), torch.device('cpu'), exposure_floor=0.3)
    plain, _ = letterbox([bright], (48, 64), torch.device('cpu'), exposure_floor=0.3)
    assert torch.equal(plain, letterbox([bright], (48, 64), torch.device('cpu'))[0])  # bright: unchanged
    mean = float((lifted + 1).mean() / 2)
    assert 0.25 < mean < 0.4  # the gamma takes the mean brightness (0.08) to about the floor
    order = torch.argsort(torch.from_numpy(dark.astype(np.float32)).flatten())  # a monotonic curve:
    values = lifted[0].permute(1, 2, 0).flatten()[order]  # the pixels keep their order
    assert (values[1:] >= values[:-1]).all()
    assert Segmenter.from_preset('tiny', device='cpu').exposure_floor == DEFAULT_EXPOSURE_FLOOR
    model = PixelClassifier(baseline_preset('micro'))  # random CAM-Seg heads ignore their condition at first
    seg, seg_off = Segmenter(model, device='cpu'), Segmenter(model, device='cpu', exposure_floor=0.0)
    a, b = seg.segment(dark), seg_off.segment(dark)
    assert not np.array_equal(a.confidence, b.confidence)  # the dark frame was brightened before the model
    a, b = seg.segment(bright), seg_off.segment(bright)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.confidence, b.confidence)


def test_bf16_on_cpu_runs(rng):
    seg = Segmenter.from_preset('tiny', device='cpu', precision='bf16', steps=2)
    out = seg.segment(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    assert out.labels.shape == (64, 96) and np.isfinite(out.confidence).all()


def test_presets_build_the_documented_architectures():
    base = preset('base')
    assert base.autoencoder.stride == 16 and base.autoencoder.channel_mult == (1, 1, 2, 2, 4)
    t = base.transformer
    assert (t.width, t.encoder_depth, t.decoder_depth) == (768, 12, 12)
    assert (base.head.depth, base.head.width) == (6, 1024)
    assert preset('tiny').autoencoder.stride == 8
    with pytest.raises(ValueError, match='unknown preset'):
        preset('huge')


def test_vote_counts_void_and_breaks_ties_by_summed_confidence():
    import torch
    # 4 samples of 3 pixels: a 2-2 tie (class 3 more confident), a void majority, a clear majority
    ids = torch.tensor([[3, 255, 5], [3, 255, 5], [7, 255, 5], [7, 1, 2]], dtype=torch.uint8)[:, None]
    conf = torch.tensor([[0.9, 0.8, 0.5], [0.8, 0.8, 0.5], [0.2, 0.8, 0.5], [0.3, 0.9, 0.9]])[:, None]
    labels, confidence = vote(ids, conf)
    assert labels[0].tolist() == [3, IGNORE_INDEX, 5]
    assert torch.allclose(confidence[0], torch.tensor([0.5 * 0.85, 0.75 * 0.8, 0.75 * 0.5]))
    swapped = vote(ids.flip(0), conf.flip(0))[0]  # the order of the samples does not matter
    assert torch.equal(swapped, labels)


def test_class_head_decodes_void_and_gives_probabilities():
    import torch
    config = preset('tiny')
    assert config.autoencoder.class_head
    model = build_model('camseg', config.to_dict()).eval()
    with torch.no_grad():
        model.autoencoder.class_head.weight.zero_()
        model.autoencoder.class_head.bias.copy_(torch.arange(20.0))  # void (the last slot) always wins
        ids, conf = model.reconstruct_mask(torch.zeros(1, *config.image_size, dtype=torch.long))
    assert (ids == IGNORE_INDEX).all()
    expected = torch.arange(20.0).softmax(0)[-1]
    assert torch.allclose(conf, expected.expand_as(conf))


def _step_by_step(head, z, steps, kind, temperature, generator):
    """Sample as the head did before its loop was rewritten: one diffusers DDIM step per step."""
    import torch
    sched, eta = head.make_scheduler(steps, kind)
    x = torch.randn((z.shape[0], head.token_channels), generator=generator)
    if eta == 0:
        x = x * temperature
    for t in sched.timesteps:
        v = head(x, torch.full((z.shape[0],), int(t), dtype=torch.long), z)
        noise = temperature * torch.randn(x.shape, generator=generator) if eta > 0 else None
        x = sched.step(v, int(t), x, eta=eta, variance_noise=noise).prev_sample
    return x


@pytest.mark.parametrize('kind, steps', [('ddpm', 12), ('ddim', 5)])
def test_head_loop_matches_the_step_by_step_sampler(kind, steps):
    import torch
    from camseg_core.config import DiffusionHeadConfig
    from camseg_core.models.diffusion_head import DiffusionHead
    torch.manual_seed(0)
    head = DiffusionHead(16, 32, DiffusionHeadConfig(width=64, depth=2))
    for p in head.parameters():  # zero-initialised gates would hide any difference
        torch.nn.init.normal_(p, std=0.2)
    z = torch.randn(37, 32)
    expected = _step_by_step(head, z, steps, kind, 0.8, torch.Generator().manual_seed(1))
    got = head.sample(z, steps, kind, 0.8, torch.Generator().manual_seed(1))
    # float32 rounding differs between CPUs' vector paths (up to 3.2e-6 seen); a real divergence is far larger
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-5)
    noise = head.draw_noise(37, steps, kind, torch.Generator().manual_seed(1))
    assert torch.equal(head.sample(z, steps, kind, 0.8, noise=noise), got)  # noise drawn up front
    with pytest.raises(ValueError, match='noise of shape'):
        head.sample(z, steps, kind, noise=noise[:, :5])


@pytest.mark.parametrize('changes', [dict(num_iter=1, scheduler='ddpm', steps=3),
                                     dict(num_iter=3, scheduler='ddim', steps=2, ensemble=2)])
def test_seeded_result_does_not_depend_on_the_batch(tiny_segmenter, rng, changes):
    seg = tiny_segmenter
    before = dataclasses.replace(seg.sampler)
    a, b, c = (rng.integers(0, 256, (64, 128, 3), dtype=np.uint8) for _ in range(3))
    seg.set_sampler(seed=5, **changes)
    try:
        alone = seg.segment(a)
        batched = seg.segment([b, a, c])[1]
    finally:
        seg.sampler = before
    assert np.array_equal(alone.labels, batched.labels)
    assert np.allclose(alone.confidence, batched.confidence, atol=1e-4)


def test_generate_never_synchronises_with_the_host(tiny_segmenter):
    """No .item(), bool(), .tolist(), nonzero or boolean indexing: a CUDA graph can capture the pass."""
    import torch
    from torch.overrides import TorchFunctionMode

    class NoHostSync(TorchFunctionMode):
        forbidden = {'item', '__bool__', 'tolist', 'nonzero', '__int__', '__float__', 'masked_select'}

        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, '__name__', '')
            bool_index = name in ('__getitem__', '__setitem__') and isinstance(args[1], torch.Tensor) \
                and args[1].dtype == torch.bool
            if name in self.forbidden or bool_index:
                raise AssertionError(f'host synchronisation: {name}')
            return func(*args, **(kwargs or {}))

    model, sampler = tiny_segmenter.model, tiny_segmenter.sampler
    tokens = torch.randn(2, 512, model.config.autoencoder.latent_channels)
    with NoHostSync():
        for changes in (dict(num_iter=1), dict(num_iter=3, scheduler='ddpm')):
            settings = dataclasses.replace(sampler, **changes)
            out = model.generate(tokens, settings, torch.Generator().manual_seed(0))
    assert out.shape == tokens.shape
    with pytest.raises(AssertionError, match='host synchronisation'), NoHostSync():
        int(tokens[0, 0, 0])  # the guard itself works


@pytest.mark.parametrize('changes', [dict(scheduler='ddim', steps=4, temperature=0.8),
                                     dict(scheduler='ddpm', steps=3, temperature=1.0)])
def test_vote_shares_the_transformer_pass_with_the_same_result(changes):
    """`predict` runs the transformer once per image and samples the E members from its one z.

    Against the computation it replaced (the transformer on E copies of the image tokens, each member from
    its own stream e, decoded and voted): the same tokens to float tolerance and the same labels.
    """
    from camseg_core.api import load_segmenter
    from camseg_core.models.camseg import from_tokens
    seg = load_segmenter(device='cpu', ensemble=4, **changes)
    model, sampler = seg.model, seg.sampler
    images = torch.rand(2, 3, *seg.config.image_size) * 2 - 1
    E, N = sampler.ensemble, images.shape[0]
    ids, conf = model.predict(images, sampler, torch.Generator().manual_seed(5))
    cond = model.image_condition(images.contiguous(memory_format=torch.channels_last))
    old = model.generate(cond.repeat(E, 1, 1), sampler, torch.Generator().manual_seed(5),
                         streams=[e for e in range(E) for _ in range(N)])  # (E*N, L, C)
    new = model.generate(cond, sampler, torch.Generator().manual_seed(5), ensemble=E)
    torch.testing.assert_close(new, old, rtol=1e-4, atol=1e-4)
    old_ids, old_conf = model.decode_mask(from_tokens(old, model.grid))
    old_ids, old_conf = vote(old_ids.view(E, N, *old_ids.shape[1:]), old_conf.view(E, N, *old_conf.shape[1:]))
    assert torch.equal(ids, old_ids)
    torch.testing.assert_close(conf, old_conf, rtol=1e-4, atol=1e-4)
