"""Cityscapes and ACDC loaders over the official directory layouts (real or `camseg-synth` data).

Cityscapes: leftImg8bit/<split>/<city>/<name>_leftImg8bit.png with
            gtFine/<split>/<city>/<name>_gtFine_labelIds.png
ACDC:       rgb_anon/<condition>/<split>/<sequence>/<name>_rgb_anon.png with
            gt/<condition>/<split>/<sequence>/<name>_gt_labelIds.png
            (the clear reference images in rgb_anon/<condition>/<split>_ref/ are not part of a split)

Items are dicts: image (H, W, 3) uint8 RGB, label (H, W) uint8 trainIds (255 = ignore), name, path.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from camseg_core.labels import label_ids_to_train_ids


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f'{what} directory not found: {path}')
    return path


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; FileNotFoundError if missing or unreadable."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f'cannot read image {path}')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label_ids(path: str | Path) -> np.ndarray:
    """Read a single-channel labelIds PNG as (H, W) uint8; FileNotFoundError/ValueError on problems."""
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise FileNotFoundError(f'cannot read label image {path}')
    if lab.ndim != 2 or lab.dtype != np.uint8:
        raise ValueError(f'{path}: expected a single-channel 8-bit labelIds image, '
                         f'got {lab.shape} {lab.dtype}')
    return lab


class _PairDataset:
    """Image/label file pairs found under an image tree; labels located by a suffix swap."""

    def __init__(self, image_dir: Path, label_dir: Path, image_suffix: str, label_suffix: str):
        self.pairs: list[tuple[Path, Path, str]] = []
        _require_dir(image_dir, 'image')
        _require_dir(label_dir, 'label')
        for img in sorted(image_dir.glob(f'*/*{image_suffix}')):
            name = img.name[:-len(image_suffix)]
            label = label_dir / img.parent.name / f'{name}{label_suffix}'
            if not label.is_file():
                raise FileNotFoundError(f'label file not found for {img}: {label}')
            self.pairs.append((img, label, name))
        if not self.pairs:
            raise FileNotFoundError(f'no *{image_suffix} images under {image_dir}/<folder>/')

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        img_path, label_path, name = self.pairs[i]
        image, label_ids = read_rgb(img_path), read_label_ids(label_path)
        if image.shape[:2] != label_ids.shape:
            raise ValueError(f'{img_path}: image {image.shape[:2]} and label {label_ids.shape} sizes differ')
        return dict(image=image, label=label_ids_to_train_ids(label_ids), name=name, path=str(img_path))


class CityscapesDataset(_PairDataset):
    """Cityscapes fine annotations of one split ('train', 'val', ...)."""

    def __init__(self, root: str | Path, split: str):
        root = _require_dir(Path(root), 'Cityscapes root')
        super().__init__(root / 'leftImg8bit' / split, root / 'gtFine' / split,
                         '_leftImg8bit.png', '_gtFine_labelIds.png')


class ACDCDataset(_PairDataset):
    """ACDC images of one condition ('fog', 'night', ...) and split; reference images excluded."""

    def __init__(self, root: str | Path, condition: str, split: str):
        root = _require_dir(Path(root), 'ACDC root')
        if split.endswith('_ref'):
            raise ValueError(f'{split!r}: reference images have no labels and are not a split')
        super().__init__(root / 'rgb_anon' / condition / split, root / 'gt' / condition / split,
                         '_rgb_anon.png', '_gt_labelIds.png')


def list_conditions(acdc_root: str | Path, split: str) -> list[str]:
    """Sorted names of the ACDC conditions that have images for `split`."""
    rgb = _require_dir(Path(acdc_root) / 'rgb_anon', 'ACDC rgb_anon')
    return sorted(p.name for p in rgb.iterdir() if (p / split).is_dir())


def open_dataset(spec: str) -> _PairDataset:
    """Open 'cityscapes:ROOT:SPLIT' or 'acdc:ROOT:CONDITION:SPLIT' (ROOT may itself contain ':')."""
    kind, _, rest = spec.partition(':')
    parts = rest.rsplit(':', 2 if kind == 'acdc' else 1)
    if kind == 'cityscapes' and len(parts) == 2 and all(parts):
        return CityscapesDataset(*parts)
    if kind == 'acdc' and len(parts) == 3 and all(parts):
        return ACDCDataset(*parts)
    raise ValueError(f"bad dataset spec {spec!r}: expected 'cityscapes:ROOT:SPLIT' "
                     "or 'acdc:ROOT:CONDITION:SPLIT'")
