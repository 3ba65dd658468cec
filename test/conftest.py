"""Shared fixtures: tiny models and checkpoints built with the project's own API."""
import numpy as np
import pytest
import torch

from camseg_core import Segmenter, save_pretrained

torch.set_num_threads(2)


@pytest.fixture(scope='session')
def tiny_segmenter():
    """Build a randomly initialised tiny model on the CPU with a fast sampler."""
    return Segmenter.from_preset('tiny', device='cpu', steps=4, scheduler='ddim')


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory, tiny_segmenter):
    """Write a tiny checkpoint directory with save_pretrained."""
    return save_pretrained(tiny_segmenter.model, tmp_path_factory.mktemp('ckpt') / 'tiny')


def fit(params, loss_fn, steps: int, lr: float) -> list[float]:
    """Take `steps` AdamW steps on `loss_fn()` over `params`; return the losses."""
    opt = torch.optim.AdamW(params, lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(name='fit')
def fit_fixture():
    """Return `fit` (plain AdamW steps), for tests that overfit a model."""
    return fit


@pytest.fixture
def rng():
    return np.random.default_rng(0)
