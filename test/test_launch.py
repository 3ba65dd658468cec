"""The launch file (when launch_ros is installed), its camera remappings and config/segment.yaml."""
import dataclasses
import importlib.util
from pathlib import Path

import pytest
import yaml

from camseg_ros.params import NodeSettings, camera_remappings

ROOT = Path(__file__).resolve().parents[1]


def test_config_yaml_holds_every_parameter_with_its_default():
    values = yaml.safe_load((ROOT / 'config' / 'segment.yaml').read_text())['/**']['ros__parameters']
    defaults = dataclasses.asdict(NodeSettings())
    assert set(values) == set(defaults)
    for name, value in values.items():
        assert value == defaults[name] and type(value) is type(defaults[name]), name


def test_camera_remappings():
    single = ([], [('image', '/cam/raw'), ('image/compressed', '/cam/raw/compressed')])
    assert camera_remappings('/cam/raw') == single
    cameras, remaps = camera_remappings('/ignored', 'cam_front=/front/raw, cam_left=/left/raw')
    assert cameras == ['cam_front', 'cam_left']
    assert ('cam_front/image', '/front/raw') in remaps
    assert ('cam_left/image/compressed', '/left/raw/compressed') in remaps
    with pytest.raises(ValueError, match='camera_topics must look like'):
        camera_remappings('/x', 'cam_front:/front/raw')
    with pytest.raises(ValueError, match='distinct relative topic names'):
        camera_remappings('/x', 'a=/1,a=/2')


def test_launch_description():
    pytest.importorskip('launch_ros', reason='launch_ros is not installed (not on PyPI; needs ROS 2)')
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable

    spec = importlib.util.spec_from_file_location('segment_launch', ROOT / 'launch' / 'segment.launch.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    declared = {a.name for a in description.entities if isinstance(a, DeclareLaunchArgument)}
    assert {'image', 'camera_topics', 'checkpoint', 'device', 'params_file', 'namespace'} <= declared
    env_actions = [a for a in description.entities if isinstance(a, SetEnvironmentVariable)]
    assert len(env_actions) <= 1
