"""Start and stop `segment_node` in a process of its own (used by the bag replay, the probe and the tests)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from camseg_ros.transport import NODE_ENV


def node_command(checkpoint: str | None, params: dict | None = None, ros_args: tuple = (),
                 params_file: str | Path | None = None, executable: str | Path | None = None) -> list[str]:
    """Build `segment_node --ros-args [--params-file F] [-p checkpoint:=...] -p k:=v ... [ros_args]`.

    The -p values come after the file, so they win. `executable` is an installed `segment_node`
    (default: this Python running `camseg_ros.node`); `checkpoint` None keeps the file's value.
    """
    cmd = [str(executable)] if executable else [sys.executable, '-m', 'camseg_ros.node']
    cmd.append('--ros-args')
    if params_file:
        cmd += ['--params-file', str(params_file)]
    if checkpoint is not None:
        cmd += ['-p', f'checkpoint:={checkpoint}']
    for key, value in (params or {}).items():
        cmd += ['-p', f'{key}:={value}']
    return cmd + list(ros_args)


def start_node(checkpoint: str | None, domain_id: int, log_path: str | Path, params: dict | None = None,
               ros_args: tuple = (), params_file: str | Path | None = None,
               executable: str | Path | None = None, env: dict | None = None,
               transports: str | None = None) -> subprocess.Popen:
    """Start segment_node in its own process on ROS domain `domain_id`, its output going to `log_path`.

    `transports` is its FASTDDS_BUILTIN_TRANSPORTS (default: NODE_ENV's).
    """
    return _spawn(node_command(checkpoint, params, ros_args, params_file, executable), domain_id, log_path,
                  env, transports)


def start_relay(domain_id: int, log_path: str | Path, width: int, height: int,
                transports: str | None = None) -> subprocess.Popen:
    """Start `camseg_ros.tools.relay` (no model: answers each image with a WIDTH x HEIGHT mask)."""
    command = [sys.executable, '-m', 'camseg_ros.tools.relay', str(width), str(height)]
    return _spawn(command, domain_id, log_path, None, transports)


def _spawn(cmd: list[str], domain_id: int, log_path: str | Path, env: dict | None,
           transports: str | None) -> subprocess.Popen:
    environment = dict(env if env is not None else os.environ, ROS_DOMAIN_ID=str(domain_id), **NODE_ENV)
    if transports:
        environment['FASTDDS_BUILTIN_TRANSPORTS'] = transports
    with open(log_path, 'w') as log:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, env=environment, stdout=log, stderr=subprocess.STDOUT)


def stop_node(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGINT the node process, then kill it if it does not exit in time; returns its exit status."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def random_checkpoint(directory: str | Path, preset: str = 'tiny') -> str:
    """Save a randomly initialised model of `preset` as a checkpoint under `directory` (tests, probes)."""
    from camseg_core.api import Segmenter
    from camseg_core.checkpoint import save_pretrained
    return str(save_pretrained(Segmenter.from_preset(preset, device='cpu').model, Path(directory) / preset))
