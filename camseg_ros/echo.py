"""The transport floor under segment_node: a node that answers each image at once with a mask of its size.

`python -m camseg_ros.echo` (started by `camseg-latency-probe`) subscribes to `image` with segment_node's
input QoS (best effort, keep last 1), reads each frame in place and publishes an all-zero mono8
`segmentation/mask` of the same size with its header, with segment_node's output QoS (reliable, keep last 2)
and its serialisation. Publish -> mask received through it is what DDS and rclpy alone cost a node in another
process: no node can answer faster, whatever its model.
"""
from __future__ import annotations

import sys

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from camseg_ros.cdr import image_bytes, parse_image


def main(args=None) -> int:
    """Run the echo node until interrupted."""
    try:
        with rclpy.init(args=args):
            node = Node('camseg_echo')
            out = node.create_publisher(Image, 'segmentation/mask', QoSProfile(
                depth=2, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE))
            masks: dict[tuple[int, int], np.ndarray] = {}

            def answer(serialised: bytes) -> None:
                frame = parse_image(serialised)
                shape = (frame.height, frame.width)
                if shape not in masks:
                    masks[shape] = np.zeros(shape, np.uint8)
                out.publish(image_bytes(frame.header, masks[shape], 'mono8'))

            node.create_subscription(Image, 'image', answer, QoSProfile(
                depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT),
                raw=True)
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
