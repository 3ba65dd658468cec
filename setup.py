"""camseg_ros: one ament_python package that installs camseg_core (no ROS) and camseg_ros."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'camseg_ros'
# Training, evaluation, figures, generated data (camseg-train, camseg-eval, camseg-sweep, camseg-synth, ...).
TRAIN = ['albumentations>=2.0', 'tensorboard', 'matplotlib', 'tqdm', 'pillow']
# Bag tools (camseg-bag-eval, camseg-bag-replay, camseg-synth --bag): rosbag2 and MCAP files without ROS.
BAGS = ['rosbags>=0.10', 'mcap>=1.1', 'mcap-ros2-support', 'pyyaml', 'tqdm']

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
    # What the node and the inference API import (`import camseg_ros.node`, `import camseg_core.api`).
    install_requires=[
        'torch>=2.2',
        'numpy>=1.24',
        'diffusers>=0.30',
        'safetensors>=0.4',
        'opencv-python-headless',
        'setuptools',
    ],
    extras_require={
        'train': TRAIN,
        'bags': BAGS,
        # ROS 2 Kilted Python wheels from PyPI, for machines without a ROS distribution.
        'ros': ['ros-rclpy[fastrtps]', 'ros-sensor-msgs', 'ros-std-msgs', 'ros-diagnostic-msgs',
                'ros-lifecycle-msgs', 'ros-builtin-interfaces'],
        # Everything the test suite runs: the training and bag extras, and torchmetrics as a reference.
        'test': ['pytest', 'pytest-timeout', 'flake8', 'flake8-docstrings', 'pydocstyle',
                 'ros-ament-flake8', 'ros-ament-pep257', 'torchmetrics>=1.0', *TRAIN, *BAGS],
        # ONNX export (camseg-export --onnx) and runtime='onnxruntime' (onnxruntime-gpu for CUDA/TensorRT)
        'onnx': ['onnx', 'onnxruntime'],
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
            'camseg-export = camseg_core.cli.export:main',
            'camseg-calibrate = camseg_core.cli.calibrate:main',
            'segment_node = camseg_ros.node:main',
            'camseg-latency-probe = camseg_ros.tools.latency_probe:main',
            'camseg-bag-eval = camseg_ros.tools.bag_eval:main',
            'camseg-bag-replay = camseg_ros.tools.bag_replay:main',
        ],
    },
)
