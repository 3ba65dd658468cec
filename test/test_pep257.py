"""ament_pep257 (docstring conventions) over the repository."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXCLUDES = ['.venv', 'build', 'install', 'log', 'runs']
# The project starts multi-line docstrings on the first line (PEP 257 allows both; so does the
# pep257 convention that ament_flake8's flake8-docstrings applies); ament's own convention asks
# for the second line (D213), so that one check is left out.
ADD_IGNORE = ['D213']


def test_pep257():
    pep257 = pytest.importorskip('ament_pep257.main', reason='ament_pep257 is not installed')
    argv = [str(ROOT), '--add-ignore', *ADD_IGNORE, '--exclude', *[str(ROOT / e) for e in EXCLUDES]]
    assert pep257.main(argv=argv) == 0, 'Found code style errors / warnings'
