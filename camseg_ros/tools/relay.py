"""A node with no model, for the latency probe: what DDS and rclpy alone cost for the probe's messages.

`python -m camseg_ros.tools.relay WIDTH HEIGHT` (ROS_DOMAIN_ID and FASTDDS_BUILTIN_TRANSPORTS from the
environment) subscribes `image` as serialised bytes with segment_node's default input QoS and answers every
frame, inside its callback, with a pre-serialised WIDTH x HEIGHT mono8 `segmentation/mask` that carries the
frame's header stamp, published with segment_node's default output QoS. Whatever the probe measures through
it is the floor that any rclpy node pays to take this image and publish this mask in another process; what
segment_node adds beyond it is its own.
"""
from __future__ import annotations

import sys

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import Image

from camseg_ros.cdr import Header, Stamp, image_bytes, parse_image, write_stamp
from camseg_ros.image_codec import stamp_ns
from camseg_ros.params import NodeSettings
from camseg_ros.qos import OUTPUT_DEPTH, qos_profile


class Relay(Node):
    """Answers each `image` with a `segmentation/mask` of a fixed size and the image's stamp."""

    def __init__(self, width: int, height: int):
        super().__init__('camseg_relay')
        self.mask = bytearray(image_bytes(Header(Stamp(), 'relay'), np.zeros((height, width), np.uint8),
                                          'mono8'))
        defaults = NodeSettings()  # segment_node's default QoS, in and out
        self.pub = self.create_publisher(Image, 'segmentation/mask',
                                         qos_profile(defaults.output_qos, reliable_depth=OUTPUT_DEPTH))
        self.create_subscription(Image, 'image', self._on_image, qos_profile(defaults.qos), raw=True)

    def _on_image(self, serialised: bytes) -> None:
        write_stamp(self.mask, stamp_ns(parse_image(serialised).header))
        self.pub.publish(bytes(self.mask))


def main(argv=None) -> int:
    """Run the relay until SIGINT: `python -m camseg_ros.tools.relay WIDTH HEIGHT`."""
    args = sys.argv[1:] if argv is None else argv
    try:
        width, height = (int(v) for v in args)
    except ValueError:
        print('usage: python -m camseg_ros.tools.relay WIDTH HEIGHT', file=sys.stderr)
        return 2
    rclpy.init()
    node = Relay(width, height)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
