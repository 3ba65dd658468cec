"""camseg_core: CAM-Seg semantic segmentation with per-pixel confidence (pure Python + PyTorch, no ROS)."""
from .api import Segmentation, Segmenter, load_segmenter
from .checkpoint import CheckpointError, load_pretrained, save_pretrained
from .config import PRESETS, CamSegConfig, SamplerConfig, preset

__all__ = ['Segmenter', 'Segmentation', 'load_segmenter', 'CheckpointError', 'load_pretrained',
           'save_pretrained', 'PRESETS', 'CamSegConfig', 'SamplerConfig', 'preset']
