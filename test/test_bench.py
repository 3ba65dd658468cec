"""camseg-bench runs the real segment() and writes a table and JSON."""
import json

import pytest

from camseg_core.benchmark import parse_setting
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
    assert 'paper' in capsys.readouterr().out


def test_bad_settings_are_reported(tiny_checkpoint):
    with pytest.raises(ValueError, match='key:value'):
        parse_setting('x=steps')
    with pytest.raises(SystemExit) as exc:
        bench.main(['--checkpoint', str(tiny_checkpoint), '--setting', 'bad=steps:0', '--iters', '1'])
    assert exc.value.code == 2
