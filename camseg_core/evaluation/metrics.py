"""
Segmentation and confidence metrics, accumulated over a whole dataset in bounded memory.

- `ConfusionMatrix`: per-class IoU, mIoU, pixel accuracy, per-class precision / recall.
- `CalibrationMeter`: expected calibration error (ECE), reliability-diagram data, and the AUROC of
  the confidence for detecting wrong pixels.
- `MetricSuite`: both, fed from one (prediction, target, confidence) triple; `summary()` is JSON-ready.

Everything is vectorised with `np.bincount`; pixels whose target is the ignore index never count. Void is
void: a *prediction* of the ignore index (the model decoded black / void) on a labelled pixel counts as wrong,
a false negative of the true class that predicts no class.
"""
from __future__ import annotations

import math

import numpy as np

from ..labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES


def _as_numpy(x, name: str) -> np.ndarray:
    """Return a numpy view of an ndarray or a (possibly GPU) torch tensor."""
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise ValueError(f'{name} must be a numpy array or torch tensor, got {type(x).__name__}')
    return x


def _nan_to_none(value):
    """JSON has no NaN: undefined values become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ConfusionMatrix:
    """A (num_classes x num_classes) confusion matrix; rows are ground truth, columns predictions.

    `void` counts, per ground-truth class, the labelled pixels predicted as the ignore index (void): they
    lower that class's recall and IoU, and no class's precision.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX):
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.void = np.zeros(num_classes, dtype=np.int64)  # (K,) labelled pixels predicted void

    def update(self, pred, target) -> None:
        """Add one prediction / ground-truth pair of integer label maps of the same shape."""
        pred = _as_numpy(pred, 'pred').astype(np.int64, copy=False).ravel()
        target = _as_numpy(target, 'target').astype(np.int64, copy=False).ravel()
        if pred.shape != target.shape:
            raise ValueError(f'pred has {pred.size} pixels but target has {target.size}')
        valid = target != self.ignore_index
        pred, target = pred[valid], target[valid]
        if target.size and (target.min() < 0 or target.max() >= self.num_classes):
            raise ValueError(f'target holds ids outside [0, {self.num_classes}) that are not the ignore '
                             f'index {self.ignore_index}')
        k = self.num_classes
        void = pred == self.ignore_index
        if void.any():
            self.void += np.bincount(target[void], minlength=k)
            pred, target = pred[~void], target[~void]
        if pred.size and (pred.min() < 0 or pred.max() >= self.num_classes):
            raise ValueError(f'pred holds ids outside [0, {self.num_classes}) that are not the ignore '
                             f'index {self.ignore_index} on evaluated pixels')
        self.matrix += np.bincount(target * k + pred, minlength=k * k).reshape(k, k)

    @property
    def total(self) -> int:
        """Count the evaluated (non-ignored) pixels so far, those predicted void included."""
        return int(self.matrix.sum() + self.void.sum())

    def gt_pixels(self) -> np.ndarray:
        """Count the evaluated pixels per ground-truth class (K,), those predicted void included."""
        return self.matrix.sum(1) + self.void

    def iou(self) -> np.ndarray:
        """Per-class IoU = TP / (TP + FP + FN); NaN for a class absent from both prediction and target.

        A labelled pixel predicted void is a false negative of its class.
        """
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.gt_pixels() - tp
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(union > 0, tp / union, np.nan)

    def miou(self) -> tuple[float, int]:
        """Mean IoU over the classes present in prediction or target, and how many classes that was."""
        iou = self.iou()
        present = ~np.isnan(iou)
        return (float(iou[present].mean()) if present.any() else float('nan')), int(present.sum())

    def precision(self) -> np.ndarray:
        """Per-class precision = TP / (TP + FP); NaN for a class never predicted."""
        tp = np.diag(self.matrix).astype(np.float64)
        predicted = self.matrix.sum(0)
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(predicted > 0, tp / predicted, np.nan)

    def recall(self) -> np.ndarray:
        """Per-class recall = TP / (TP + FN), void predictions included in FN; NaN for a class absent."""
        tp = np.diag(self.matrix).astype(np.float64)
        actual = self.gt_pixels()
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(actual > 0, tp / actual, np.nan)

    def mean_precision(self) -> float:
        """Mean per-class precision over the classes ever predicted (what the CAM-Seg paper calls "AP")."""
        p = self.precision()
        return float(np.nanmean(p)) if (~np.isnan(p)).any() else float('nan')

    def pixel_accuracy(self) -> float:
        """Fraction of evaluated pixels predicted correctly."""
        return float(np.trace(self.matrix) / self.total) if self.total else float('nan')


class CalibrationMeter:
    """
    Calibration of a per-pixel confidence, accumulated as histograms (memory independent of data size).

    ECE uses `num_bins` equal-width confidence bins. The AUROC of confidence for detecting wrong
    pixels (score 1 - confidence, positive = wrong) is computed from `auroc_bins` equal-width
    histograms of the confidence of right and wrong pixels, counting pixels in the same bin as ties
    (half credit). It is exact when confidences fall on the bin grid and otherwise differs from the
    exact AUROC by at most half the fraction of (wrong, right) pairs that share a bin.
    """

    def __init__(self, num_bins: int = 15, auroc_bins: int = 1000):
        if num_bins < 1 or auroc_bins < 1:
            raise ValueError(f'num_bins and auroc_bins must be >= 1, got {num_bins}, {auroc_bins}')
        self.num_bins = num_bins
        self.auroc_bins = auroc_bins
        self.count = np.zeros(num_bins, dtype=np.int64)
        self.conf_sum = np.zeros(num_bins, dtype=np.float64)
        self.correct_sum = np.zeros(num_bins, dtype=np.int64)
        self.hist_right = np.zeros(auroc_bins, dtype=np.int64)
        self.hist_wrong = np.zeros(auroc_bins, dtype=np.int64)

    @staticmethod
    def _bin(conf: np.ndarray, bins: int) -> np.ndarray:
        # [0, 1] -> {0..bins-1}; a confidence of exactly 1 goes into the last bin.
        return np.minimum((conf * bins).astype(np.int64), bins - 1)

    def update(self, confidence, correct, valid_mask=None) -> None:
        """Add pixels: confidence in [0, 1], correct (bool), and an optional mask of pixels to count."""
        conf = _as_numpy(confidence, 'confidence').astype(np.float64, copy=False).ravel()
        correct = _as_numpy(correct, 'correct').astype(bool, copy=False).ravel()
        if conf.shape != correct.shape:
            raise ValueError(f'confidence has {conf.size} values but correct has {correct.size}')
        if valid_mask is not None:
            valid = _as_numpy(valid_mask, 'valid_mask').astype(bool, copy=False).ravel()
            if valid.shape != conf.shape:
                raise ValueError(f'valid_mask has {valid.size} values but confidence has {conf.size}')
            conf, correct = conf[valid], correct[valid]
        if conf.size == 0:
            return
        if not np.isfinite(conf).all() or conf.min() < 0.0 or conf.max() > 1.0:
            raise ValueError(f'confidence must be finite and in [0, 1], got range '
                             f'[{conf.min()}, {conf.max()}]')
        b = self._bin(conf, self.num_bins)
        self.count += np.bincount(b, minlength=self.num_bins)
        self.conf_sum += np.bincount(b, weights=conf, minlength=self.num_bins)
        self.correct_sum += np.bincount(b[correct], minlength=self.num_bins)
        a = self._bin(conf, self.auroc_bins)
        self.hist_right += np.bincount(a[correct], minlength=self.auroc_bins)
        self.hist_wrong += np.bincount(a[~correct], minlength=self.auroc_bins)

    @property
    def total(self) -> int:
        """Count the pixels added so far."""
        return int(self.count.sum())

    def reliability(self) -> dict:
        """Per-bin mean confidence, accuracy (NaN in empty bins), pixel count, and the bin edges."""
        with np.errstate(invalid='ignore', divide='ignore'):
            mean_conf = np.where(self.count > 0, self.conf_sum / self.count, np.nan)
            accuracy = np.where(self.count > 0, self.correct_sum / self.count, np.nan)
        return {'edges': np.linspace(0.0, 1.0, self.num_bins + 1), 'confidence': mean_conf,
                'accuracy': accuracy, 'count': self.count.copy()}

    def ece(self) -> float:
        """Compute the expected calibration error: sum over bins of share * |accuracy - mean confidence|."""
        if not self.total:
            return float('nan')
        gap = np.abs(self.correct_sum - self.conf_sum)  # = count * |acc - conf| per bin
        return float(gap.sum() / self.total)

    def auroc_wrong(self) -> float:
        """Compute the AUROC of 1 - confidence for finding wrong pixels; NaN without wrong or right pixels."""
        n_wrong, n_right = int(self.hist_wrong.sum()), int(self.hist_right.sum())
        if n_wrong == 0 or n_right == 0:
            return float('nan')
        # A wrong pixel outranks a right one when its confidence is lower (a higher bin for the right one).
        right_above = np.cumsum(self.hist_right[::-1])[::-1] - self.hist_right  # right pixels in higher bins
        wins = (self.hist_wrong * (right_above + 0.5 * self.hist_right)).sum(dtype=np.float64)
        return float(wins / (n_wrong * n_right))

    def mean_confidence(self) -> float:
        """Mean confidence over all counted pixels."""
        return float(self.conf_sum.sum() / self.total) if self.total else float('nan')


class MetricSuite:
    """Class metrics and confidence calibration from the same predictions."""

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX,
                 num_bins: int = 15, auroc_bins: int = 1000, class_names: tuple[str, ...] | None = None):
        self.confusion = ConfusionMatrix(num_classes, ignore_index)
        self.calibration = CalibrationMeter(num_bins, auroc_bins)
        names = class_names if class_names is not None else \
            (CLASS_NAMES if num_classes == NUM_CLASSES else tuple(str(i) for i in range(num_classes)))
        if len(names) != num_classes:
            raise ValueError(f'{len(names)} class names given for {num_classes} classes')
        self.class_names = tuple(names)

    def update(self, pred, target, confidence) -> None:
        """Add one image: predicted ids (H, W), target ids (H, W), confidence (H, W) in [0, 1]."""
        pred = _as_numpy(pred, 'pred')
        target = _as_numpy(target, 'target')
        confidence = _as_numpy(confidence, 'confidence')
        if not pred.shape == target.shape == confidence.shape:
            raise ValueError(f'shapes differ: pred {pred.shape}, target {target.shape}, '
                             f'confidence {confidence.shape}')
        self.confusion.update(pred, target)
        valid = target != self.confusion.ignore_index
        self.calibration.update(confidence, pred.astype(np.int64) == target, valid)

    def miou(self) -> float:
        """Mean IoU so far (classes absent from both prediction and target left out)."""
        return self.confusion.miou()[0]

    def summary(self) -> dict:
        """All results as plain JSON-friendly data (undefined values are None)."""
        cm, cal = self.confusion, self.calibration
        miou, averaged = cm.miou()
        iou, prec, rec = cm.iou(), cm.precision(), cm.recall()
        rel = cal.reliability()
        f = _nan_to_none
        return {
            'num_pixels': cm.total,
            'miou': f(miou),
            'num_classes_averaged': averaged,
            'pixel_accuracy': f(cm.pixel_accuracy()),
            'void_pixels': int(cm.void.sum()),  # labelled pixels predicted void (counted wrong)
            'mean_precision': f(cm.mean_precision()),
            'per_class': {
                name: {'iou': f(float(iou[i])), 'precision': f(float(prec[i])), 'recall': f(float(rec[i])),
                       'gt_pixels': int(cm.gt_pixels()[i]), 'pred_pixels': int(cm.matrix[:, i].sum()),
                       'void_pixels': int(cm.void[i])}
                for i, name in enumerate(self.class_names)},
            'calibration': {
                'ece': f(cal.ece()),
                'auroc_wrong': f(cal.auroc_wrong()),
                'mean_confidence': f(cal.mean_confidence()),
                'num_bins': cal.num_bins,
                'auroc_bins': cal.auroc_bins,
                'reliability': {
                    'edges': [float(e) for e in rel['edges']],
                    'confidence': [f(float(v)) for v in rel['confidence']],
                    'accuracy': [f(float(v)) for v in rel['accuracy']],
                    'count': [int(c) for c in rel['count']],
                },
            },
        }


def latency_summary(values_ms) -> dict:
    """Summarise latencies in milliseconds: count, median, p95, max and mean ({'count': 0} when empty)."""
    arr = np.asarray(values_ms, dtype=np.float64)
    if not arr.size:
        return {'count': 0}
    return {'count': int(arr.size), 'median_ms': float(np.median(arr)),
            'p95_ms': float(np.percentile(arr, 95)), 'max_ms': float(arr.max()), 'mean_ms': float(arr.mean())}
