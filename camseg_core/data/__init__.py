"""Synthetic data, dataset loaders and augmentation (no ROS)."""
