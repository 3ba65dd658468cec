"""A tiny CAM-Seg trained for a few hundred steps on a handful of label maps reconstructs them.

This proves that the autoencoder, the transformer's loss, the diffusion head's loss and the sampler
fit together.
"""
import numpy as np
import torch

from camseg_core import Segmenter, preset
from camseg_core.checkpoint import build_model
from camseg_core.labels import colorize, encode_maskige

H, W = 32, 64


def street_like_maps(rng, n):
    """Sky / building-or-vegetation / road bands with a car: simple, but every map differs."""
    maps = np.zeros((n, H, W), np.uint8)
    for lab in maps:
        h1, h2 = rng.integers(6, 14), rng.integers(18, 26)
        lab[:h1] = 10
        lab[h1:h2] = rng.choice([2, 8])
        lab[h2:] = 0
        x0 = rng.integers(0, W - 20)
        lab[h2 - 6:h2 + 3, x0:x0 + 16] = 13
    return maps


def test_tiny_model_overfits_a_handful_of_maps(fit):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    labels = street_like_maps(rng, 4)
    colours = colorize(labels).astype(np.float32)
    images = (0.6 * colours + 0.4 * colours[..., ::-1] + rng.normal(0, 8, colours.shape)).clip(0, 255)
    images = images.astype(np.uint8)

    config = preset('tiny')
    config.image_size = (H, W)
    model = build_model('camseg', config.to_dict())
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = torch.from_numpy(labels)

    opt = torch.optim.AdamW(model.autoencoder.parameters(), lr=3e-3)
    for _ in range(160):
        loss, _ = model.autoencoder.loss(encode_maskige(y), labels=y, class_weight=1.0)  # and the class head
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        ids, _ = model.reconstruct_mask(y)  # decoded as predictions are: through the class head
    ae_acc = (ids == y).float().mean().item()

    image_tokens, mask_tokens = model.encode_pair(x, y)
    params = [*model.transformer.parameters(), *model.head.parameters()]
    losses = fit(params, lambda: model.loss(image_tokens, mask_tokens), steps=300, lr=1e-3)

    seg = Segmenter(model, device='cpu', steps=20, scheduler='ddim', seed=0)
    outs = seg.segment(list(images))
    acc = float(np.mean([(o.labels == lab).mean() for o, lab in zip(outs, labels)]))
    print(f'autoencoder mask accuracy {ae_acc:.3f}, generated mask accuracy {acc:.3f}, '
          f'loss {np.mean(losses[:10]):.3f} -> {np.mean(losses[-10:]):.3f}')
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:10])
    assert ae_acc > 0.8
    assert acc > 0.8
    assert acc > ae_acc - 0.05  # generation reaches what the autoencoder can reconstruct
