"""Training of CAM-Seg (autoencoder, then transformer + diffusion head) and of the baseline.

`run(stage, settings)` trains one stage (what camseg-train does); `recipe.load_recipe` and `runner.run_recipe`
run a recipe file of stages (camseg-train recipe).
"""
from .job import TrainJob, TrainResult, run
from .loop import NonFiniteLoss, Trainer, TrainConfig

__all__ = ['NonFiniteLoss', 'Trainer', 'TrainConfig', 'TrainJob', 'TrainResult', 'run']
