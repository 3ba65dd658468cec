"""ament_flake8 over the repository (max line length 110, as in setup.cfg)."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXCLUDES = ['.venv', 'build', 'install', 'log', 'runs']


def test_flake8():
    flake8_main = pytest.importorskip('ament_flake8.main', reason='ament_flake8 is not installed')
    cwd = os.getcwd()
    os.chdir(ROOT)  # ament_flake8 also skips folders starting with '.' or '_' under the working directory
    try:
        argv = ['--linelength', '110', '--exclude', *EXCLUDES, '--', str(ROOT)]
        rc, errors = flake8_main.main_with_errors(argv=argv)
    finally:
        os.chdir(cwd)
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
