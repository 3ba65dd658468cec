"""camseg_ros: one ament_python package that installs camseg_core (no ROS) and camseg_ros."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'camseg_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=['camseg_core', 'camseg_core.*', 'camseg_ros', 'camseg_ros.*']),
    package_data={'camseg_core': ['assets/*/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml')),
    ],
    python_requires='>=3.10',
    install_requires=[
        'torch>=2.2',
        'numpy>=1.24',
        'diffusers>=0.30',
        'safetensors>=0.4',
        'tqdm',
        'pillow',
        'opencv-python-headless',
        'matplotlib',
        'albumentations>=2.0',
        'torchmetrics>=1.0',
        'tensorboard',
        'rosbags>=0.10',
        'mcap>=1.1',
        'mcap-ros2-support',
        'pyyaml',
        'setuptools',
    ],
    extras_require={
        # ROS 2 Kilted Python wheels from PyPI, for machines without a ROS distribution.
        'ros': ['ros-rclpy[fastrtps]', 'ros-sensor-msgs', 'ros-std-msgs', 'ros-diagnostic-msgs',
                'ros-lifecycle-msgs', 'ros-builtin-interfaces'],
        'test': ['pytest', 'pytest-timeout', 'flake8', 'flake8-docstrings', 'pydocstyle',
                 'ros-ament-flake8', 'ros-ament-pep257'],
    },
    zip_safe=True,
    maintainer='camseg developers',
    maintainer_email='camseg@example.com',
    description='CAM-Seg semantic segmentation with per-pixel confidence for ROS 2 cameras.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'camseg-bench = camseg_core.cli.bench:main',
            'camseg-synth = camseg_core.cli.synth:main',
            'camseg-train = camseg_core.cli.train:main',
            'camseg-eval = camseg_core.cli.eval:main',
            'camseg-compare = camseg_core.cli.compare:main',
            'camseg-sweep = camseg_core.cli.sweep:main',
            'camseg-calibrate = camseg_core.cli.calibrate:main',
            'segment_node = camseg_ros.node:main',
            'camseg-latency-probe = camseg_ros.latency_probe:main',
            'camseg-bag-eval = camseg_ros.bag_eval:main',
            'camseg-bag-replay = camseg_ros.bag_replay:main',
        ],
    },
)
