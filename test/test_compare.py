"""camseg-compare: evaluations side by side (mIoU, ECE, AUROC, retention, share of the baseline, ceilings)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from camseg_core import Segmenter
from camseg_core.cli.compare import main
from camseg_core.evaluation.compare import compare, load_runs
from camseg_core.evaluation.report import evaluate
from camseg_core.models.baseline import PixelClassifier, baseline_preset


def _summary(name, model_type, values, ceilings=None):
    """Build a minimal camseg-eval summary: values maps subset -> (mIoU, ECE, AUROC)."""
    return {'model': {'name': name, 'model_type': model_type},
            'datasets': {s: {'num_images': 2,
                             'metrics': {'miou': m, 'pixel_accuracy': m, 'mean_precision': 1 - m,
                                         'calibration': {'ece': e, 'auroc_wrong': a}},
                             'ceilings': (ceilings or {}).get(s)}
                         for s, (m, e, a) in values.items()}}


def _write(path, summary):
    path.mkdir(parents=True)
    (path / 'metrics.json').write_text(json.dumps(summary))
    return path


CAMSEG = _summary('tiny_synth', 'camseg', {'clear': (0.40, 0.10, 0.70), 'fog': (0.30, 0.12, 0.68),
                                           'night': (0.20, None, 0.60)},
                  ceilings={'clear': {'resolution': {'miou': 0.72}, 'autoencoder': {'miou': 0.50}}})
BASELINE = _summary('base', 'baseline', {'fog': (0.40, 0.05, 0.75), 'clear': (0.50, 0.04, 0.80)},
                    ceilings={'clear': {'resolution': {'miou': 0.72}, 'autoencoder': None}})


def test_compare_numbers():
    result = compare({'camseg': CAMSEG, 'base': BASELINE})
    assert result['baseline'] == 'base' and result['subsets'] == ['clear', 'fog', 'night']
    clear, fog, night = (result['results'][s] for s in result['subsets'])
    assert fog['camseg']['retention'] == pytest.approx(0.75)
    assert fog['base']['retention'] == pytest.approx(0.8)
    assert fog['camseg']['precision_retention'] == pytest.approx(0.7 / 0.6)  # mean per-class precision
    assert clear['base']['mean_precision'] == pytest.approx(0.5)
    assert clear['camseg']['retention'] == pytest.approx(1.0)
    assert fog['camseg']['of_baseline'] == pytest.approx(0.75) and 'of_baseline' not in fog['base']
    assert clear['camseg']['ece_vs_baseline'] == pytest.approx(0.06)
    assert clear['camseg']['ceilings'] == {'resolution': 0.72, 'autoencoder': 0.50}
    assert clear['base']['ceilings'] == {'resolution': 0.72, 'autoencoder': None}
    assert fog['camseg']['ceilings'] is None
    assert list(night) == ['camseg'] and night['camseg']['ece'] is None  # no baseline run on night
    # Another baseline by name, and retention against another subset.
    other = compare({'camseg': CAMSEG, 'base': BASELINE}, baseline='camseg', reference='fog')
    assert other['results']['fog']['base']['of_baseline'] == pytest.approx(4 / 3)
    assert other['results']['clear']['camseg']['retention'] == pytest.approx(0.4 / 0.3)
    with pytest.raises(ValueError, match='at least two'):
        compare({'camseg': CAMSEG})
    with pytest.raises(ValueError, match='baseline'):
        compare({'camseg': CAMSEG, 'base': BASELINE}, baseline='nope')


def test_cli_writes_tables_json_and_plot(tmp_path):
    a = _write(tmp_path / 'a', CAMSEG)
    b = _write(tmp_path / 'b', BASELINE)
    out = tmp_path / 'cmp'
    assert main([str(a / 'metrics.json'), f'mine={b}', '--out', str(out)]) == 0
    result = json.loads((out / 'comparison.json').read_text())
    assert list(result['models']) == ['tiny_synth', 'mine'] and result['baseline'] == 'mine'
    md = (out / 'comparison.md').read_text()
    for text in ('## mIoU', '## Retention', '## Calibration', '## Ceilings', 'tiny_synth of mine',
                 '| fog | 30.0 | 40.0 | 75.0 |', '72.0 / 50.0 / 40.0', '72.0 / - / 50.0', '+6.0',
                 '## Mean per-class precision', '| fog | 70.0 (116.7) | 60.0 (120.0) |'):
        assert text in md, text
    with Image.open(out / 'comparison.png') as im:
        assert im.format == 'PNG' and im.size[0] > 100
    for bad in ([str(a), '--out', str(out)], [str(a), str(tmp_path / 'missing'), '--out', str(out)],
                [str(a), str(b), '--baseline', 'x', '--out', str(out)]):
        with pytest.raises(SystemExit):
            main(bad)


def test_reads_a_real_evaluation(tmp_path, rng):
    torch.manual_seed(0)
    baseline = Segmenter(PixelClassifier(baseline_preset('micro')), device='cpu', name='micro')
    label = np.kron(rng.integers(0, 19, size=(2, 4)), np.ones((16, 16), np.int64)).astype(np.uint8)
    item = {'image': rng.integers(0, 255, size=(32, 64, 3)).astype(np.uint8), 'label': label, 'name': 'x'}
    evaluate(baseline, {'clear': [item], 'fog': [item]}, tmp_path / 'eval', num_samples=0)
    runs = load_runs([str(tmp_path / 'eval'), f'again={tmp_path / "eval" / "metrics.json"}'])
    result = compare(runs)
    assert list(runs) == ['micro', 'again'] and result['baseline'] == 'micro'
    fog = result['results']['fog']
    assert fog['again']['of_baseline'] == pytest.approx(1.0)
    assert fog['micro']['retention'] == pytest.approx(1.0)
    assert fog['micro']['ceilings']['resolution'] == 1.0 and fog['micro']['ceilings']['autoencoder'] is None
