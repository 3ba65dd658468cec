"""`colcon build` of this checkout in a scratch workspace; the installed segment_node answers over DDS.

This is the README's ROS 2 section, step by step: build with colcon, source install/setup.bash, start
install/camseg_ros/lib/camseg_ros/segment_node with the installed share/camseg_ros/config/segment.yaml.
colcon comes from PyPI into a virtual environment of its own; the node runs on this interpreter (which has
torch and rclpy), as a ROS distribution's python3 would run it.
"""
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2) is not installed')

from camseg_ros.tools.process import NODE_ENV, stop_node  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
COLCON = ['colcon-core', 'colcon-ros', 'colcon-python-setup-py', 'colcon-package-selection',
          'colcon-package-information', 'colcon-output', 'colcon-bash', 'ros-ament-package']
PACKAGE = 'camseg_ros'
ASSIGNMENT = re.compile(r'^[A-Z_][A-Z0-9_]*=\S*$')


def readme_workspace_commands() -> list[str]:
    """Return the commands of the README's workspace block (the `sh` block of its ROS 2 section)."""
    section = (ROOT / 'README.md').read_text().split('## ROS 2', 1)[1].split('\n## ', 1)[0]
    block = re.search(r'```sh\n(.*?)```', section, re.S)
    assert block, 'the README has no workspace (sh) block in its ROS 2 section'
    return [line.strip() for line in block.group(1).replace('\\\n', ' ').splitlines() if line.strip()]


def colcon_environment(root: Path) -> Path:
    """Install colcon from PyPI into a virtual environment of its own; skip if that is impossible."""
    env_dir = root / 'colcon-venv'
    venv.create(env_dir, with_pip=True)
    pip = subprocess.run([str(env_dir / 'bin' / 'python'), '-m', 'pip', 'install', '--quiet',
                          '--disable-pip-version-check', *COLCON],
                         capture_output=True, text=True, timeout=300)
    if pip.returncode != 0:
        pytest.skip(f'cannot install colcon from PyPI: {pip.stderr.strip()[-500:]}')
    return env_dir


def copy_checkout(dest: Path) -> None:
    """Copy the checkout's tracked files (as a clone would have them) into a workspace's src/."""
    files = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split('\0')):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """colcon-build this checkout in a scratch workspace; return (workspace, install prefix)."""
    tmp_path = tmp_path_factory.mktemp('colcon')
    colcon_env = colcon_environment(tmp_path)
    ws = tmp_path / 'ws'
    copy_checkout(ws / 'src' / PACKAGE)
    # colcon's own packages come from its environment; builds run on this interpreter, so the installed
    # scripts start it (like /usr/bin/python3 in a ROS distribution).
    site = next((colcon_env / 'lib').glob('python3*/site-packages'))
    paths = [str(site), os.environ.get('PYTHONPATH')]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths)))
    build_command = readme_workspace_commands()[1]
    assert build_command.startswith('colcon build'), build_command
    build = subprocess.run([sys.executable, '-m', *shlex.split(build_command)],
                           cwd=ws, env=env, capture_output=True, text=True, timeout=400)
    print(build.stdout[-3000:], build.stderr[-3000:])
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    prefix = ws / 'install' / PACKAGE
    for path in (prefix / 'lib' / PACKAGE / 'segment_node', prefix / 'share' / PACKAGE / 'package.xml',
                 prefix / 'share' / PACKAGE / 'config' / 'segment.yaml',
                 prefix / 'share' / PACKAGE / 'launch' / 'segment.launch.py',
                 prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE):
        assert path.is_file(), f'colcon did not install {path}'
    return ws, prefix


def test_colcon_build_and_installed_node(installed, tmp_path):
    clone, build_command, source, node_command = readme_workspace_commands()
    assert 'git clone' in clone and source == 'source install/setup.bash', (clone, source)
    assert build_command.startswith('colcon build') and 'segment_node' in node_command
    ws, prefix = installed
    executable = prefix / 'lib' / PACKAGE / 'segment_node'
    config = prefix / 'share' / PACKAGE / 'config' / 'segment.yaml'

    # The README's commands: source the workspace, run the installed node with the installed config.
    domain = random.randint(20, 59)  # test_node 100..149, bag replay 150..230, latency probe 150..230
    argv = shlex.split(node_command)
    n = next(i for i, word in enumerate(argv) if not ASSIGNMENT.match(word))  # VAR=value prefixes
    assert argv[n] == str(executable.relative_to(ws)), argv
    assert argv[argv.index('--params-file') + 1] == str(config.relative_to(ws)), argv
    assert 'image:=/camera/image_raw' in argv, argv
    command = f'{source} && {shlex.join(argv[:n])} exec {shlex.join(argv[n:])}'  # exec: SIGINT reaches it
    run_env = dict(os.environ, ROS_DOMAIN_ID=str(domain), **NODE_ENV)
    run_env.pop('PYTHONPATH', None)
    this_python = dict(run_env, PATH=f'{Path(sys.executable).parent}:{run_env["PATH"]}')
    check = subprocess.run(['bash', '-c', 'source install/setup.bash && python3 -c '
                            '"import camseg_ros; print(camseg_ros.__file__)"'],
                           cwd=ws, env=this_python, capture_output=True, text=True, timeout=60)
    assert str(prefix) in check.stdout, f'the installed package is not imported first:\n{check}'
    log = tmp_path / 'installed_node.log'
    with open(log, 'w') as out:
        node = subprocess.Popen(['bash', '-c', command], cwd=ws, env=run_env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        mask = exchange_one_frame(domain, node, log)
    finally:
        stop_node(node)
    assert (mask.height, mask.width, mask.encoding) == (64, 128, 'mono8')
    labels = np.frombuffer(mask.data, np.uint8)
    assert np.isin(labels, list(range(19)) + [255]).all()
    text = log.read_text()
    assert 'tiny_synth' in text, text  # the demo model installed with the package (checkpoint: '')


def exchange_one_frame(domain: int, node: subprocess.Popen, log: Path, image_topic: str = '/camera/image_raw',
                       info_topic: str | None = None):
    """Publish a 64x128 frame on `image_topic` until the node answers on /segmentation/mask.

    With `info_topic`, also a CameraInfo there before each frame; returns (mask, camera_info) of one stamp.
    """
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from camseg_ros.image_codec import fill_image, stamp_ns
    os.environ.update(NODE_ENV)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        client = Node('colcon_test', context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(client)
        masks, infos = {}, {}
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        client.create_subscription(Image, '/segmentation/mask',
                                   lambda m: masks.__setitem__(stamp_ns(m.header), m), reliable)
        client.create_subscription(CameraInfo, '/segmentation/camera_info',
                                   lambda m: infos.__setitem__(stamp_ns(m.header), m), reliable)
        pub = client.create_publisher(Image, image_topic, QoSProfile(depth=1))
        info_pub = info_topic and client.create_publisher(CameraInfo, info_topic, QoSProfile(depth=1))
        frame = fill_image(Image(), np.random.default_rng(0).integers(0, 256, (64, 128, 3), np.uint8), 'rgb8')

        def answered():
            return any(s in infos for s in masks) if info_topic else bool(masks)

        end = time.monotonic() + 120
        while not answered() and node.poll() is None and time.monotonic() < end:
            if pub.get_subscription_count() > 0:
                frame.header.stamp = client.get_clock().now().to_msg()
                if info_pub:
                    info_pub.publish(CameraInfo(header=frame.header, width=128, height=64))
                    executor.spin_once(timeout_sec=0.05)
                pub.publish(frame)
            stop = time.monotonic() + 1.0
            while not answered() and time.monotonic() < stop:
                executor.spin_once(timeout_sec=0.05)
        assert answered(), f'no answer from the node (exit {node.poll()}):\n{log.read_text()[-3000:]}'
        if info_topic:
            stamp = next(s for s in masks if s in infos)
            return masks[stamp], infos[stamp]
        return next(iter(masks.values()))
    finally:
        rclpy.shutdown(context=context)


def test_installed_node_with_the_arguments_launch_ros_gives_it(installed, tmp_path):
    """The installed node started exactly as launch_ros starts it from the launch file (launch_args).

    `--ros-args -r __node:=camseg -r __ns:=/ --params-file <share>/config/segment.yaml --params-file
    <overrides> -r image:=... -r image/compressed:=... -r camera_info:=...`: a mask and the camera_info come
    back for a camera on /cam0/image_raw with its camera_info on /cam0/camera_info.
    """
    from camseg_ros.launch_args import node_spec, ros_arguments, write_overrides
    from test_launch import launch_defaults

    ws, prefix = installed
    spec = node_spec(dict(launch_defaults(), image='/cam0/image_raw', profile='fast', device='cpu'),
                     prefix / 'share' / PACKAGE)
    argv = [str(prefix / 'lib' / PACKAGE / 'segment_node'),
            *ros_arguments(spec, write_overrides(spec, tmp_path / 'overrides.yaml'))]
    assert '-r' in argv and 'camera_info:=/cam0/camera_info' in argv, argv
    domain = random.randint(20, 59)
    run_env = dict(os.environ, ROS_DOMAIN_ID=str(domain), **NODE_ENV)
    run_env.pop('PYTHONPATH', None)
    log = tmp_path / 'launched_node.log'
    with open(log, 'w') as out:
        node = subprocess.Popen(['bash', '-c', f'source install/setup.bash && exec {shlex.join(argv)}'],
                                cwd=ws, env=run_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        mask, info = exchange_one_frame(domain, node, log, '/cam0/image_raw', '/cam0/camera_info')
    finally:
        stop_node(node)
    assert (mask.height, mask.width, mask.encoding) == (64, 128, 'mono8')
    assert (info.width, info.height) == (128, 64) and info.header == mask.header
    text = log.read_text()
    assert 'ensemble=1' in text and 'steps=4' in text, text  # profile fast from the overrides file
