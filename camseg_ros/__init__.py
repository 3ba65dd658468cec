"""camseg_ros: the ROS 2 adapter (segment_node) around the camseg_core Segmenter."""
