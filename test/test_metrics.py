"""Tests of camseg_core.evaluation.metrics against torchmetrics and exact hand computations."""
import json

import numpy as np
import pytest
import torch
from torchmetrics.classification import BinaryAUROC, MulticlassJaccardIndex

from camseg_core.evaluation.metrics import CalibrationMeter, ConfusionMatrix, MetricSuite
from camseg_core.labels import CLASS_NAMES, IGNORE_INDEX


def _random_maps(rng, shape=(4, 32, 48), k=19, ignore_frac=0.2):
    target = rng.integers(0, k, size=shape).astype(np.uint8)
    target[rng.random(shape) < ignore_frac] = IGNORE_INDEX
    pred = np.where(rng.random(shape) < 0.6, target, rng.integers(0, k, size=shape)).astype(np.uint8)
    pred[pred == IGNORE_INDEX] = 0
    return pred, target


def _exact_auroc(score, positive):
    """Pairwise AUROC with half credit for ties (small data only)."""
    pos, neg = score[positive], score[~positive]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / (pos.size * neg.size)


def test_iou_matches_torchmetrics_on_random_data():
    rng = np.random.default_rng(0)
    pred, target = _random_maps(rng, k=19)
    # Leave classes 17 and 18 out of both maps so that they are absent.
    target[target >= 17] = IGNORE_INDEX
    pred[pred >= 17] = 0
    cm = ConfusionMatrix(19)
    for p, t in zip(pred, target):
        cm.update(p, t)
    ref = MulticlassJaccardIndex(num_classes=19, average=None, ignore_index=255)
    ref.update(torch.from_numpy(pred).long(), torch.from_numpy(target).long())
    ref_iou = ref.compute().numpy()
    iou = cm.iou()
    present = ~np.isnan(iou)
    assert present.sum() == 17 and not present[17] and not present[18]
    np.testing.assert_allclose(iou[present], ref_iou[present], rtol=1e-6)
    miou, averaged = cm.miou()
    assert averaged == 17
    assert miou == pytest.approx(ref_iou[:17].mean(), rel=1e-6)


def test_ignore_pixels_never_count():
    target = np.array([[0, 1, IGNORE_INDEX, IGNORE_INDEX]], dtype=np.uint8)
    pred = np.array([[0, 1, 5, 7]], dtype=np.uint8)
    cm = ConfusionMatrix(19)
    cm.update(pred, target)
    assert cm.total == 2
    assert cm.pixel_accuracy() == 1.0
    miou, averaged = cm.miou()
    assert miou == 1.0 and averaged == 2  # classes 5 and 7 were predicted only on ignored pixels
    suite = MetricSuite()
    suite.update(pred, target, np.array([[1.0, 1.0, 0.0, 0.0]], dtype=np.float32))
    assert suite.calibration.total == 2
    assert suite.calibration.ece() == pytest.approx(0.0)


def test_hand_computed_iou_precision_and_absent_classes():
    target = np.array([0, 0, 0, 1, 1, 2], dtype=np.uint8)
    pred = np.array([0, 0, 1, 1, 2, 2], dtype=np.uint8)
    cm = ConfusionMatrix(4)
    cm.update(torch.from_numpy(pred), torch.from_numpy(target))  # tensors are accepted too
    np.testing.assert_allclose(cm.iou()[:3], [2 / 3, 1 / 3, 1 / 2])
    assert np.isnan(cm.iou()[3])
    np.testing.assert_allclose(cm.precision()[:3], [1.0, 0.5, 0.5])
    assert cm.mean_precision() == pytest.approx(2 / 3)
    assert cm.pixel_accuracy() == pytest.approx(4 / 6)
    assert cm.miou() == (pytest.approx((2 / 3 + 1 / 3 + 1 / 2) / 3), 3)


def test_predicted_void_on_labelled_pixels_is_wrong():
    # Class 0: 3 pixels, one predicted void; class 1: 2 pixels, both predicted void; one ignored pixel
    # predicted void does not count at all.
    V = IGNORE_INDEX
    target = np.array([0, 0, 0, 1, 1, 2, V], dtype=np.uint8)
    pred = np.array([0, 0, V, V, V, 2, V], dtype=np.uint8)
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    assert cm.total == 6 and cm.void.tolist() == [1, 2, 0, 0]
    np.testing.assert_allclose(cm.iou()[:3], [2 / 3, 0.0, 1.0])  # void is a false negative of the class
    np.testing.assert_allclose(cm.recall()[:3], [2 / 3, 0.0, 1.0])
    assert cm.precision()[0] == 1.0 and np.isnan(cm.precision()[1])  # void predicts no class
    assert cm.pixel_accuracy() == pytest.approx(3 / 6)
    assert cm.miou() == (pytest.approx((2 / 3 + 0 + 1) / 3), 3)
    # Same as predicting a wrong class, as far as the true classes' IoU goes.
    ref = ConfusionMatrix(4)
    ref.update(np.where(pred == V, 3, pred), target)
    np.testing.assert_allclose(cm.iou()[:3], ref.iou()[:3])
    suite = MetricSuite(4)
    suite.update(pred, target, np.ones(7, np.float32))  # sure of everything: the 3 void pixels are wrong
    assert suite.calibration.total == 6
    assert suite.calibration.ece() == pytest.approx(0.5)
    summary = suite.summary()
    assert summary['void_pixels'] == 3 and summary['per_class']['1']['void_pixels'] == 2
    assert summary['per_class']['1']['gt_pixels'] == 2 and summary['per_class']['1']['iou'] == 0.0


def test_bad_inputs_raise():
    cm = ConfusionMatrix(19)
    with pytest.raises(ValueError, match='target holds ids'):
        cm.update(np.zeros(3, np.uint8), np.array([0, 30, 1], np.uint8))
    with pytest.raises(ValueError, match='pred holds ids'):
        cm.update(np.array([0, 19, 1], np.uint8), np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match='pixels'):
        cm.update(np.zeros(3, np.uint8), np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match='in \\[0, 1\\]'):
        CalibrationMeter().update(np.array([0.5, 1.5]), np.array([True, False]))


def test_ece_calibrated_vs_overconfident():
    rng = np.random.default_rng(1)
    n = 200_000
    conf = rng.uniform(0.05, 1.0, n)
    calibrated = CalibrationMeter(15)
    calibrated.update(conf, rng.random(n) < conf)  # right with probability = confidence
    assert calibrated.ece() < 0.01
    over = CalibrationMeter(15)
    over.update(np.full(n, 0.95), rng.random(n) < 0.5)  # 95 % sure, right half of the time
    assert over.ece() == pytest.approx(0.45, abs=0.01)
    rel = over.reliability()
    assert rel['count'].sum() == n and rel['count'][-1] == n
    assert rel['confidence'][-1] == pytest.approx(0.95)


def test_auroc_matches_torchmetrics_and_exact_pairwise():
    rng = np.random.default_rng(2)
    n = 3000
    wrong = rng.random(n) < 0.3
    # Confidences on the centres of the 1000 histogram bins (wrong pixels lower): the AUROC is exact.
    bins = np.where(wrong, rng.integers(0, 800, n), rng.integers(100, 1000, n))
    conf_grid = (bins + 0.5) / 1000
    meter = CalibrationMeter(15, auroc_bins=1000)
    meter.update(conf_grid, ~wrong)
    exact = _exact_auroc(1 - conf_grid, wrong)
    ref = BinaryAUROC()(torch.from_numpy(1 - conf_grid), torch.from_numpy(wrong).long()).item()
    assert meter.auroc_wrong() == pytest.approx(exact, abs=1e-9)
    assert meter.auroc_wrong() == pytest.approx(ref, abs=1e-5)
    # Continuous confidences: within the documented tie error of the exact value.
    conf = np.clip(rng.beta(5, 2, n) - 0.2 * wrong, 0, 1)
    meter = CalibrationMeter(15, auroc_bins=1000)
    meter.update(conf, ~wrong)
    assert meter.auroc_wrong() == pytest.approx(_exact_auroc(1 - conf, wrong), abs=2e-3)
    assert 0.5 < meter.auroc_wrong() < 1.0


def test_auroc_undefined_without_wrong_pixels():
    meter = CalibrationMeter()
    meter.update(np.array([0.2, 0.9]), np.array([True, True]))
    assert np.isnan(meter.auroc_wrong())


def test_suite_summary_is_json_ready():
    rng = np.random.default_rng(3)
    pred, target = _random_maps(rng, shape=(2, 16, 16), k=5)
    suite = MetricSuite()
    for p, t in zip(pred, target):
        suite.update(p, t, rng.random(t.shape).astype(np.float32))
    summary = json.loads(json.dumps(suite.summary(), allow_nan=False))
    assert summary['num_classes_averaged'] == 5
    assert list(summary['per_class']) == list(CLASS_NAMES)
    assert summary['per_class']['sky']['iou'] is None  # trainId 10 never occurs
    assert summary['miou'] == pytest.approx(suite.miou())
    assert len(summary['calibration']['reliability']['count']) == 15
    assert sum(summary['calibration']['reliability']['count']) == summary['num_pixels']


def test_mean_precision_of_a_hand_computed_confusion_matrix():
    # rows: ground truth, columns: predictions (3 classes; class 3 of 4 never appears)
    counts = np.array([[3, 1, 0],
                       [0, 2, 2],
                       [1, 0, 1]])
    target = np.repeat(np.repeat(np.arange(3), 3), counts.ravel())
    pred = np.repeat(np.tile(np.arange(3), 3), counts.ravel())
    suite = MetricSuite(4)
    suite.update(pred.astype(np.uint8), target.astype(np.uint8), np.ones(pred.size))
    np.testing.assert_array_equal(suite.confusion.matrix[:3, :3], counts)
    # precision = TP / (TP + FP) = diagonal / column sum: 3/4, 2/3, 1/3; class 3 never predicted: left out
    summary = suite.summary()
    precision = [summary['per_class'][str(i)]['precision'] for i in range(4)]
    assert precision[:3] == pytest.approx([3 / 4, 2 / 3, 1 / 3]) and precision[3] is None
    assert summary['mean_precision'] == pytest.approx((3 / 4 + 2 / 3 + 1 / 3) / 3)
    # IoU beside it: TP / (TP + FP + FN) = 3/5, 2/5, 1/4
    assert summary['miou'] == pytest.approx((3 / 5 + 2 / 5 + 1 / 4) / 3)
