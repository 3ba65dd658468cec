"""
Evaluation: metrics, corruptions, figures, and the runner behind `camseg-eval`.

Only the light metrics are imported here; import `corruptions` (albumentations), `plots`
(matplotlib) and `report` explicitly.
"""
from .metrics import CalibrationMeter, ConfusionMatrix, MetricSuite

__all__ = ['CalibrationMeter', 'ConfusionMatrix', 'MetricSuite']
