"""The DDS transport of segment_node across processes: Fast DDS large-data settings (launch, tools, tests)."""
from __future__ import annotations

from pathlib import Path

WHOLE_MESSAGE_BYTES = 4_000_000  # a 1280x720 rgb8 frame (2.8 MB) or 32FC1 confidence (3.7 MB) in one piece


def socket_buffer_limit() -> int:
    """Return the largest socket buffer the kernel grants (bytes; 0 where it cannot be read)."""
    try:
        return min(int(Path(f'/proc/sys/net/core/{name}').read_text()) for name in ('rmem_max', 'wmem_max'))
    except (OSError, ValueError):
        return 0


def large_data_transports(message_bytes: int = WHOLE_MESSAGE_BYTES) -> str:
    """Return the FASTDDS_BUILTIN_TRANSPORTS value for large images between processes.

    LARGE_DATA (shared memory on one host, TCP between hosts, UDP for discovery only), with messages of up to
    `message_bytes` sent whole instead of in 64 KB fragments where the kernel's socket buffer limit allows
    it (Fast DDS refuses to start its transports with a larger `sockets_size` than the kernel grants).
    """
    size = min(message_bytes, socket_buffer_limit())
    if size < 1_000_000:
        return 'LARGE_DATA'
    return f'LARGE_DATA?max_msg_size={size}&sockets_size={size}'


# Large images across processes need Fast DDS' large-data transports in every process.
NODE_ENV = {'FASTDDS_BUILTIN_TRANSPORTS': large_data_transports()}
