"""camseg-bench runs the real segment() and writes a table and JSON."""
import json

import pytest
import torch

from camseg_core.benchmark import _is_paper, parse_setting
from camseg_core.profiling import StageTimer
from camseg_core.cli import bench


def test_bench_compares_settings(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / 'b.json'
    rc = bench.main(['--checkpoint', str(tiny_checkpoint), '--size', '60x100', '--iters', '2',
                     '--warmup', '1',
                     '--setting', 'paper=num_iter:1,steps:3,scheduler:ddpm',
                     '--setting', 'iter2=num_iter:2,steps:2,scheduler:ddim', '--json', str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    assert set(report['settings']) == {'paper', 'iter2'}
    r = report['settings']['paper']
    assert r['latency_ms_median'] > 0 and r['latency_ms_p95'] >= r['latency_ms_median']
    assert r['stages_ms_median']['diffusion'] > 0 and r['stages_ms_median']['encode'] > 0
    assert report['settings']['iter2']['sampler']['num_iter'] == 2
    assert report['paper_setting'] == 'paper' and r['speedup_vs_paper'] == 1.0 and r['fps'] > 0
    assert report['settings']['iter2']['speedup_vs_paper'] > 0 and report['graphs'] is False
    assert 'paper' in capsys.readouterr().out


def test_no_graphs_and_no_paper_flags(tmp_path, tiny_checkpoint):
    out = tmp_path / 'b.json'
    assert bench.main(['--checkpoint', str(tiny_checkpoint), '--size', '40x60', '--iters', '1',
                       '--warmup', '0',
                       '--setting', 'one=num_iter:1,steps:1,scheduler:ddim', '--no-paper', '--no-graphs',
                       '--json', str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report['settings']) == ['one'] and report['settings']['one']['speedup_vs_paper'] is None
    assert _is_paper({'num_iter': 1, 'steps': 100, 'scheduler': 'ddpm'}) and not _is_paper({'steps': 4})


def test_a_setting_may_change_the_precision(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / 'b.json'
    assert bench.main(['--checkpoint', str(tiny_checkpoint), '--size', '40x60', '--iters', '1',
                       '--warmup', '0', '--setting', 'paper=num_iter:1,steps:2,scheduler:ddpm',
                       '--setting', 'bf=num_iter:1,steps:1,scheduler:ddim,precision:bf16',
                       '--json', str(out)]) == 0
    settings = json.loads(out.read_text())['settings']
    assert settings['paper']['precision'] == 'fp32' and settings['bf']['precision'] == 'bf16'
    assert settings['bf']['latency_ms_median'] > 0
    table = capsys.readouterr().out
    assert any(line.startswith('bf ') and '| bf16 ' in line for line in table.splitlines())


def test_stage_timer_synchronises_the_given_device(monkeypatch):
    synced = []
    monkeypatch.setattr(torch.cuda, 'synchronize', lambda device=None: synced.append(device))
    timer = StageTimer(True, 'cuda:1')  # no CUDA needed: synchronize is replaced
    with timer('stage'):
        pass
    assert synced == [torch.device('cuda', 1)] * 2 and timer.seconds['stage'] >= 0
    StageTimer(True, 'cpu')
    with StageTimer(True, torch.device('cpu'))('x'):
        pass
    assert len(synced) == 2


def test_bad_settings_are_reported(tiny_checkpoint):
    with pytest.raises(ValueError, match='key:value'):
        parse_setting('x=steps')
    with pytest.raises(SystemExit) as exc:
        bench.main(['--checkpoint', str(tiny_checkpoint), '--setting', 'bad=steps:0', '--iters', '1'])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        bench.main(['--checkpoint', str(tiny_checkpoint), '--setting', 'bad=steps:1,precision:fp8',
                    '--iters', '1'])
    assert exc.value.code == 2


def test_bench_times_both_runtimes_in_one_run(tmp_path, tiny_checkpoint, capsys):
    pytest.importorskip('onnxruntime', reason='onnxruntime not installed (pip install -e .[onnx])')
    out = tmp_path / 'b.json'
    assert bench.main(['--checkpoint', str(tiny_checkpoint), '--size', '40x60', '--iters', '1',
                       '--warmup', '0', '--runtime', 'torch,onnxruntime', '--onnx-dir', str(tmp_path / 'g'),
                       '--setting', 'one=num_iter:1,steps:2,scheduler:ddim,ensemble:2', '--no-paper',
                       '--json', str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report['runtimes']) == {'torch', 'onnxruntime'}
    assert report['runtimes']['onnxruntime']['providers'] == ['CPUExecutionProvider']
    row = report['comparison']['one']
    assert row['speed_vs_torch']['torch'] == 1.0 and row['speed_vs_torch']['onnxruntime'] > 0
    assert 'speed torch-relative' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(['--runtime', 'torch,keras'])
    with pytest.raises(SystemExit) as bf16:
        bench.main(['--checkpoint', str(tiny_checkpoint), '--runtime', 'onnxruntime', '--onnx-dir',
                    str(tmp_path / 'g'), '--setting', 'b=steps:1,precision:bf16', '--no-paper',
                    '--json', str(out)])
    assert bf16.value.code == 2
