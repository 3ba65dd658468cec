"""What launch/segment.launch.py starts, computed without launch_ros (so it is tested without ROS 2).

`node_spec` turns the launch arguments into the node's name, namespace, parameter files and remappings;
`ros_arguments` is the command line launch_ros builds from them, and `write_overrides` the parameter file it
writes for the launch file's overrides. The launch arguments and their defaults are the launch file's
ARGUMENTS table.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from camseg_ros.params import camera_remappings, remap_arguments

PACKAGE = 'camseg_ros'
EXECUTABLE = 'segment_node'
OVERRIDES = ('checkpoint', 'device', 'profile', 'runtime')  # launch arguments that set a node parameter


@dataclass
class NodeSpec:
    """segment_node as the launch file starts it."""

    name: str
    namespace: str  # absolute, '/' for none
    params_file: str
    overrides: dict  # parameters set by launch arguments, after params_file
    remappings: list[tuple[str, str]]

    @property
    def fully_qualified_name(self) -> str:
        """Return /namespace/name."""
        return f'{self.namespace.rstrip("/")}/{self.name}'


def node_spec(arg: dict[str, str], share_dir: str | Path) -> NodeSpec:
    """Build the NodeSpec from the launch file's argument values (its ARGUMENTS) and the package share.

    Needs image, camera_topics, params_file, namespace and node_name; the OVERRIDES that are given and not
    empty set node parameters after params_file.
    """
    params_file = arg['params_file'] or str(Path(share_dir) / 'config' / 'segment.yaml')
    cameras, remappings = camera_remappings(arg['image'], arg['camera_topics'])
    overrides = {key: arg[key] for key in OVERRIDES if arg.get(key)}
    if cameras:
        overrides['cameras'] = cameras
    return NodeSpec(arg['node_name'], '/' + arg['namespace'].strip('/'), params_file, overrides, remappings)


def write_overrides(spec: NodeSpec, path: str | Path) -> Path:
    """Write the overrides as launch_ros writes a parameter dict: keyed by the node's full name."""
    path = Path(path)
    path.write_text(yaml.safe_dump({spec.fully_qualified_name: {'ros__parameters': spec.overrides}}))
    return path


def ros_arguments(spec: NodeSpec, overrides_file: str | Path) -> list[str]:
    """Return the arguments launch_ros gives the executable for `spec` (after its own path)."""
    return ['--ros-args', '-r', f'__node:={spec.name}', '-r', f'__ns:={spec.namespace}',
            '--params-file', str(spec.params_file), '--params-file', str(overrides_file),
            *remap_arguments(spec.remappings)]
