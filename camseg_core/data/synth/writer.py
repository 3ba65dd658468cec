"""Write generated scenes as a dataset in the Cityscapes / ACDC layouts (what camseg-synth --out does).

Scene i of a run is rendered once and written in every requested condition:
  clear -> ROOT/leftImg8bit/<split>/synth<seed>/synth<seed>_000000_<i:06d>_leftImg8bit.png
           ROOT/gtFine/<split>/synth<seed>/synth<seed>_000000_<i:06d>_gtFine_labelIds.png
  other -> ROOT/rgb_anon/<cond>/<split>/SYN<seed>/SYN<seed>_frame_<i:06d>_rgb_anon.png
           ROOT/gt/<cond>/<split>/SYN<seed>/SYN<seed>_frame_<i:06d>_gt_labelIds.png
           ROOT/rgb_anon/<cond>/<split>_ref/SYN<seed>/SYN<seed>_frame_<i:06d>_rgb_ref_anon.png (clear view)
Each scene draws from its own random stream ([seed, i]), so several processes write exactly the files of one.
"""
from __future__ import annotations

import multiprocessing as mp
import zlib
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..weather import FOG_BETAS, apply_weather, fog_condition_name, parse_condition
from .layout import SceneConfig
from .render import render_scene


def expand_conditions(text: str) -> list[str]:
    """Comma list of conditions -> folder names ('fog' becomes all FOG_BETAS); ValueError on unknown names."""
    names: list[str] = []
    for name in (n.strip() for n in text.split(',') if n.strip()):
        parse_condition(name)
        new = [fog_condition_name(b) for b in FOG_BETAS] if name == 'fog' else [name]
        names += [n for n in new if n not in names]
    if not names:
        raise ValueError('no conditions given')
    return names


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise OSError(f'could not write {path}')


def write_scene(root: Path, i: int, split: str, seed: int, config: SceneConfig,
                conditions: list[str]) -> None:
    """Render scene `i` of a run (its own random stream, [seed, i]) and write it in every condition."""
    city, seq = f'synth{seed}', f'SYN{seed}'
    scene = render_scene(np.random.default_rng([seed, i]), config)
    for cond in conditions:
        if cond == 'clear':
            name = f'{city}_000000_{i:06d}'
            _write(root / 'leftImg8bit' / split / city / f'{name}_leftImg8bit.png', scene.image)
            _write(root / 'gtFine' / split / city / f'{name}_gtFine_labelIds.png', scene.label_ids)
            continue
        image = apply_weather(scene, cond, np.random.default_rng([seed, i, zlib.crc32(cond.encode())]))
        name = f'{seq}_frame_{i:06d}'
        _write(root / 'rgb_anon' / cond / split / seq / f'{name}_rgb_anon.png', image)
        _write(root / 'gt' / cond / split / seq / f'{name}_gt_labelIds.png', scene.label_ids)
        _write(root / 'rgb_anon' / cond / f'{split}_ref' / seq / f'{name}_rgb_ref_anon.png', scene.image)


def _one_thread() -> None:
    """Start a worker with one OpenCV thread (many processes x threads would oversubscribe the cores)."""
    cv2.setNumThreads(1)


def write_dataset(root: Path, num: int, split: str, seed: int, size: tuple[int, int], conditions: list[str],
                  progress: bool = True, workers: int = 1) -> None:
    """Render `num` scenes and write each in every condition under `root` (layouts in the module doc).

    With `workers` > 1 the scenes are rendered in that many processes; every scene draws from its own random
    stream and is written to its own files, so the output is byte for byte that of one process.
    """
    if workers < 1:
        raise ValueError(f'--workers must be >= 1, got {workers}')
    config = SceneConfig(*size).validate()
    job = partial(write_scene, root, split=split, seed=seed, config=config, conditions=conditions)
    bar = partial(tqdm, total=num, desc=f'synth {split}', disable=not progress)
    if workers == 1 or num <= 1:
        for i in bar(range(num)):
            job(i)
        return
    # spawn, not fork: a forked child of a process that already runs threads (torch, OpenMP, rclpy, a test
    # runner) can inherit a held lock and hang for ever
    context = mp.get_context('spawn')
    with context.Pool(min(workers, num), initializer=_one_thread) as pool:
        for _ in bar(pool.imap_unordered(job, range(num), chunksize=max(1, min(16, num // (4 * workers))))):
            pass
