"""Launch segment_node with config/segment.yaml.

ros2 launch camseg_ros segment.launch.py image:=/camera/image_raw checkpoint:=/path/to/checkpoint
ros2 launch camseg_ros segment.launch.py camera_topics:=cam_front=/front/image_raw,cam_left=/left/image_raw
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from camseg_ros.params import camera_remappings

PACKAGE = 'camseg_ros'
# Large images across processes need Fast DDS' LARGE_DATA builtin transports; a value already set wins.
TRANSPORT_VARIABLE = 'FASTDDS_BUILTIN_TRANSPORTS'
ARGUMENTS = {
    'image': ('/camera/image_raw', 'input image topic of a single camera'),
    'camera_topics': ('', 'several cameras (replaces image): "cam_front=/front/image,cam_left=/left/image"'),
    'checkpoint': ('', 'checkpoint directory; empty: the value in params_file'),
    'device': ('', 'auto, cpu, cuda or cuda:N; empty: the value in params_file'),
    'params_file': ('', 'parameter YAML; empty: the installed config/segment.yaml'),
    'namespace': ('', 'namespace of the node and its topics'),
    'node_name': ('camseg', 'name of the node'),
}


def _node(context):
    """Build the node once the launch arguments are known."""
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    params_file = arg['params_file'] or os.path.join(get_package_share_directory(PACKAGE), 'config',
                                                     'segment.yaml')
    cameras, remappings = camera_remappings(arg['image'], arg['camera_topics'])
    overrides = {key: arg[key] for key in ('checkpoint', 'device') if arg[key]}
    if cameras:
        overrides['cameras'] = cameras
    return [LifecycleNode(package=PACKAGE, executable='segment_node', name=arg['node_name'],
                          namespace=arg['namespace'], parameters=[params_file, overrides],
                          remappings=remappings, output='screen')]


def generate_launch_description():
    """Launch arguments, the Fast DDS transport setting and segment_node."""
    actions = [DeclareLaunchArgument(name, default_value=default, description=text)
               for name, (default, text) in ARGUMENTS.items()]
    if TRANSPORT_VARIABLE not in os.environ:
        actions.append(SetEnvironmentVariable(TRANSPORT_VARIABLE, 'LARGE_DATA'))
    return LaunchDescription(actions + [OpaqueFunction(function=_node)])
