"""Training of CAM-Seg (autoencoder, then transformer + diffusion head) and of the baseline (cli/train.py)."""
from .loop import NonFiniteLoss, Trainer, TrainConfig

__all__ = ['NonFiniteLoss', 'Trainer', 'TrainConfig']
