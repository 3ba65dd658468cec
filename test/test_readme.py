"""Every command the README shows is real: its flags parse with the tool's own parser.

What the commands then do is exercised by the other tests (same tools, smaller inputs) and by `make demo`.
"""
import ast
import dataclasses
import importlib
import re
import shlex
from pathlib import Path

import pytest

from camseg_ros.params import NodeSettings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / 'README.md'
PARSERS = {
    'camseg-synth': 'camseg_core.cli.synth',
    'camseg-train': 'camseg_core.cli.train',
    'camseg-eval': 'camseg_core.cli.eval',
    'camseg-bench': 'camseg_core.cli.bench',
    'camseg-export': 'camseg_core.cli.export',
    'camseg-calibrate': 'camseg_core.cli.calibrate',
    'camseg-bag-eval': 'camseg_ros.tools.bag_eval',
    'camseg-bag-replay': 'camseg_ros.tools.bag_replay',
    'camseg-latency-probe': 'camseg_ros.tools.latency_probe',
}
# Workspace and installation steps: they need a ROS distribution or the network, so they are shown, not run.
SHELL_STEPS = {'cd', 'git', 'colcon', 'source', 'pip'}
ENV_ASSIGNMENT = re.compile(r'^[A-Z_][A-Z0-9_]*=\S*$')


def readme_commands() -> list[list[str]]:
    """Return every command of the README's bash blocks as argv lists (continuations joined, `&&` split)."""
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', README.read_text(), re.S):
        for line in block.replace('\\\n', ' ').splitlines():
            for part in line.split('&&'):
                argv = shlex.split(part, comments=True)
                while argv and ENV_ASSIGNMENT.match(argv[0]):
                    argv = argv[1:]
                if argv:
                    commands.append(argv)
    return commands


def launch_arguments() -> set[str]:
    """Return the launch file's argument names, read without importing launch_ros."""
    tree = ast.parse((ROOT / 'launch' / 'segment.launch.py').read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'ARGUMENTS':
            return set(ast.literal_eval(node.value))
    raise AssertionError('launch/segment.launch.py has no ARGUMENTS table')


def make_targets() -> set[str]:
    return set(re.findall(r'^([a-z][a-z0-9_-]*):', (ROOT / 'Makefile').read_text(), re.M))


def check_node_command(argv: list[str]) -> None:
    names = {f.name for f in dataclasses.fields(NodeSettings)}
    for flag, value in zip(argv, argv[1:]):
        if flag == '-p':
            assert value.split(':=')[0] in names, f'unknown node parameter in README: {value}'
        if flag == '--params-file':
            assert (ROOT / value).is_file(), f'README names a missing params file {value}'


def check(argv: list[str]) -> str:
    """Check one README command; return the name it was checked under."""
    prog = argv[0]
    if prog == 'torchrun':
        assert argv[argv.index('-m') + 1] == 'camseg_core.cli.train', argv
        prog, argv = 'camseg-train', ['camseg-train', *argv[argv.index('-m') + 2:]]
    if prog in PARSERS:
        try:
            importlib.import_module(PARSERS[prog]).build_parser().parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f'README command does not parse: {shlex.join(argv)}')
    elif prog == 'make':
        assert set(argv[1:]) <= make_targets(), f'README uses a missing make target: {argv}'
    elif prog == 'segment_node':
        check_node_command(argv)
    elif prog == 'ros2':
        assert argv[1:4] == ['launch', 'camseg_ros', 'segment.launch.py'], argv
        given = {a.split(':=')[0] for a in argv[4:]}
        assert given <= launch_arguments(), f'README passes unknown launch arguments: {given}'
    else:
        assert prog in SHELL_STEPS, f'README command {prog!r} is not checked by any test'
    return prog


def test_every_readme_command_parses():
    checked = {check(argv) for argv in readme_commands()}
    assert set(PARSERS) <= checked, f'README shows no example of {sorted(set(PARSERS) - checked)}'
    assert {'make', 'segment_node', 'ros2'} <= checked


def test_the_checker_catches_a_wrong_flag():
    with pytest.raises(pytest.fail.Exception, match='does not parse'):
        check(['camseg-eval', '--checkpoint', 'x', '--out', 'y', '--no-such-flag'])
    with pytest.raises(AssertionError, match='unknown node parameter'):
        check(['segment_node', '--ros-args', '-p', 'stepz:=3'])
    with pytest.raises(AssertionError, match='not checked'):
        check(['rm', '-rf', '/'])
