"""Launch segment_node with config/segment.yaml; the launch ends when the node exits.

ros2 launch camseg_ros segment.launch.py image:=/camera/image_raw checkpoint:=/path/to/checkpoint
ros2 launch camseg_ros segment.launch.py camera_topics:=cam_front=/front/image_raw,cam_left=/left/image_raw

What it starts (name, parameters, remappings: image, image/compressed and the camera_info beside each image
topic) is computed by camseg_ros.launch_args, tested without launch_ros.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from camseg_ros.launch_args import EXECUTABLE, PACKAGE, node_spec
from camseg_ros.transport import NODE_ENV

# Large images across processes need Fast DDS' large-data transports (camseg_ros.transport); a value already
# set in the environment wins.
TRANSPORT_VARIABLE = 'FASTDDS_BUILTIN_TRANSPORTS'
# name -> (default, description); an empty default leaves the value in params_file.
ARGUMENTS = {
    'image': ('/camera/image_raw', 'input image topic of a single camera (camera_info: the one beside it)'),
    'camera_topics': ('', 'several cameras (replaces image): "cam_front=/front/image,cam_left=/left/image"'),
    'checkpoint': ('', 'checkpoint directory; empty: the value in params_file'),
    'device': ('', 'auto, cpu, cuda or cuda:N; empty: the value in params_file'),
    'profile': ('', 'sampler profile (checkpoint, fast); empty: the value in params_file'),
    'runtime': ('', 'torch or onnxruntime; empty: the value in params_file'),
    'params_file': ('', 'parameter YAML; empty: the installed config/segment.yaml'),
    'namespace': ('', 'namespace of the node and its topics'),
    'node_name': ('camseg', 'name of the node'),
}


def _node(context):
    """Build the node once the launch arguments are known."""
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    spec = node_spec(values, get_package_share_directory(PACKAGE))
    # The node's death (a failed configure, a crash) ends the launch instead of leaving it running idle.
    return [LifecycleNode(package=PACKAGE, executable=EXECUTABLE, name=spec.name, namespace=spec.namespace,
                          parameters=[spec.params_file, spec.overrides], remappings=spec.remappings,
                          output='screen', on_exit=[Shutdown(reason=f'{EXECUTABLE} exited')])]


def generate_launch_description():
    """Launch arguments, the Fast DDS transport setting and segment_node."""
    actions = [DeclareLaunchArgument(name, default_value=default, description=text)
               for name, (default, text) in ARGUMENTS.items()]
    if TRANSPORT_VARIABLE not in os.environ:
        actions.append(SetEnvironmentVariable(TRANSPORT_VARIABLE, NODE_ENV[TRANSPORT_VARIABLE]))
    return LaunchDescription(actions + [OpaqueFunction(function=_node)])
