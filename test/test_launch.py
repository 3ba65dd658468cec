"""The launch file (what it starts, with and without launch_ros), its remappings and config/segment.yaml."""
import ast
import dataclasses
import importlib.util
from pathlib import Path

import pytest
import yaml

from camseg_core.config import SAMPLER_PROFILES, SamplerConfig
from camseg_ros.launch_args import node_spec, ros_arguments, write_overrides
from camseg_ros.params import NodeSettings, camera_remappings, check_value
from camseg_ros.transport import NODE_ENV

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / 'launch' / 'segment.launch.py'


def launch_defaults() -> dict[str, str]:
    """Return the launch file's argument defaults (its ARGUMENTS table), read without launch_ros."""
    for node in ast.parse(LAUNCH_FILE.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'ARGUMENTS':
            return {name: default for name, (default, _) in ast.literal_eval(node.value).items()}
    raise AssertionError('no ARGUMENTS table in the launch file')


def test_config_yaml_holds_every_parameter_with_its_default():
    values = yaml.safe_load((ROOT / 'config' / 'segment.yaml').read_text())['/**']['ros__parameters']
    defaults = dataclasses.asdict(NodeSettings())
    assert set(values) == set(defaults)
    for name, value in values.items():
        assert value == defaults[name] and type(value) is type(defaults[name]), name


def test_camera_remappings():
    single = ([], [('image', '/cam/raw'), ('image/compressed', '/cam/raw/compressed'),
                   ('camera_info', '/cam/camera_info')])
    assert camera_remappings('/cam/raw') == single
    cameras, remaps = camera_remappings('/ignored', 'cam_front=/front/raw, cam_left=/left/raw')
    assert cameras == ['cam_front', 'cam_left']
    assert remaps == [('cam_front/image', '/front/raw'),
                      ('cam_front/image/compressed', '/front/raw/compressed'),
                      ('cam_front/camera_info', '/front/camera_info'), ('cam_left/image', '/left/raw'),
                      ('cam_left/image/compressed', '/left/raw/compressed'),
                      ('cam_left/camera_info', '/left/camera_info')]
    # Relative and top-level image topics: camera_info beside them.
    assert camera_remappings('image_raw')[1][2] == ('camera_info', 'camera_info')
    assert camera_remappings('/image_raw')[1][2] == ('camera_info', '/camera_info')
    assert camera_remappings('ns/cam/image')[1][2] == ('camera_info', 'ns/cam/camera_info')
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


def test_what_launch_ros_would_start(tmp_path):
    """The launch file's defaults and arguments -> the exact command line launch_ros gives segment_node."""
    defaults = launch_defaults()
    spec = node_spec(dict(defaults, image='/camera/image_raw'), '/opt/share/camseg_ros')
    assert (spec.name, spec.namespace, spec.overrides) == ('camseg', '/', {})
    overrides = write_overrides(spec, tmp_path / 'overrides.yaml')
    assert yaml.safe_load(overrides.read_text()) == {'/camseg': {'ros__parameters': {}}}
    assert ros_arguments(spec, overrides) == [
        '--ros-args', '-r', '__node:=camseg', '-r', '__ns:=/',
        '--params-file', '/opt/share/camseg_ros/config/segment.yaml', '--params-file', str(overrides),
        '-r', 'image:=/camera/image_raw', '-r', 'image/compressed:=/camera/image_raw/compressed',
        '-r', 'camera_info:=/camera/camera_info']
    several = node_spec(dict(defaults, camera_topics='cam_front=/front/image_raw,cam_left=/left/image_raw',
                             namespace='robot', checkpoint='/ckpt', profile='fast'), '/share')
    assert several.namespace == '/robot' and several.fully_qualified_name == '/robot/camseg'
    assert several.overrides == {'checkpoint': '/ckpt', 'profile': 'fast',
                                 'cameras': ['cam_front', 'cam_left']}
    args = ros_arguments(several, 'o.yaml')
    assert 'cam_front/camera_info:=/front/camera_info' in args
    assert 'cam_left/camera_info:=/left/camera_info' in args
    # Every override names a node parameter with a valid value.
    for name, value in several.overrides.items():
        assert check_value(name, value, NodeSettings()) is None, name


def test_launch_file_transport_and_exit_handler():
    """The transport value comes from camseg_ros.transport; the node's exit ends the launch."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not any(s.startswith('LARGE_DATA') for s in strings), 'transport string written in the launch file'
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert {'NODE_ENV', 'Shutdown'} <= names
    exits = [k for n in ast.walk(tree) if isinstance(n, ast.Call) for k in n.keywords if k.arg == 'on_exit']
    assert len(exits) == 1
    assert NODE_ENV['FASTDDS_BUILTIN_TRANSPORTS'].startswith('LARGE_DATA')


def test_sampler_parameters_keep_the_checkpoint_or_profile():
    checkpoint = SamplerConfig(num_iter=1, steps=20, scheduler='ddim', temperature=0.8, ensemble=8, seed=0)
    shipped = NodeSettings()
    assert shipped.sampler(checkpoint) == checkpoint  # the shipped defaults run the checkpoint's sampler
    fast = dataclasses.replace(shipped, profile='fast').sampler(checkpoint)
    assert (fast.ensemble, fast.steps, fast.scheduler, fast.num_iter) == (1, 4, 'ddim', 1)
    assert fast.temperature == 0.8 and SAMPLER_PROFILES['checkpoint'] == {}
    tuned = dataclasses.replace(shipped, profile='fast', steps=10, temperature=1.0, seed=-1)
    tuned = tuned.sampler(checkpoint)
    assert (tuned.steps, tuned.temperature, tuned.seed, tuned.ensemble) == (10, 1.0, None, 1)
    assert dataclasses.replace(shipped, seed=5).sampler_kwargs(checkpoint)['seed'] == 5


@pytest.mark.parametrize('name, value, needle', [
    ('steps', 0, 'steps'), ('steps', -2, 'keeps'), ('ensemble', 65, 'ensemble'),
    ('temperature', 0.0, 'temperature'), ('scheduler', 'euler', 'scheduler'), ('seed', -3, 'fresh seed'),
    ('profile', 'fastest', 'profile must be one of'), ('runtime', 'tensorrt', 'runtime must be one of'),
])
def test_invalid_sampler_and_runtime_values_are_refused(name, value, needle):
    reason = check_value(name, value, NodeSettings())
    assert reason and needle in reason, reason


@pytest.mark.parametrize('name, value', [
    ('steps', -1), ('steps', 7), ('scheduler', ''), ('temperature', -1.0), ('seed', -2), ('seed', -1),
    ('profile', 'fast'), ('runtime', 'onnxruntime'), ('ensemble', 64),
])
def test_valid_sampler_and_runtime_values_are_accepted(name, value):
    assert check_value(name, value, NodeSettings(), SamplerConfig()) is None
