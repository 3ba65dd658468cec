"""Tools around the node, not part of it: bag evaluation and replay, latency probes, node processes."""
