"""What every reader hands to the writer: a sequence as lazily decoded frames, masks and boxes.

Masks are object-label images (uint8): 0 is background, 1..K are object ids. Sources without ids
(DAVIS-2016, resampled SegTrack-v2, YouTube-Objects) give a single id 1; DAVIS-2017 palette indices
and SegTrack-v2 per-object sub-folders keep their ids, so `boxes_from_masks` can box each object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from fusionseg.datasets.layout import BOX_COLUMNS
from fusionseg.errors import InputError
from fusionseg.io import read_image, read_label_image, utf8_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".ppm")

# A decoded frame and where it came from ("<file>" or "video:<n>").
Frame = tuple[str, np.ndarray]


@dataclass
class MaskSource:
    """The file(s) holding one frame's mask; several files are one object each (SegTrack-v2 sub-folders)."""

    paths: list[Path]
    threshold: int = 0

    def read(self) -> np.ndarray:
        """Object labels (uint8): palette indices as ids, any other mask as id 1 (or its folder's id)."""
        labels = None
        for object_id, path in enumerate(self.paths, start=1):
            current = read_object_labels(path, self.threshold)
            if len(self.paths) > 1:
                current = np.where(current > 0, object_id, 0).astype(np.uint8)
            labels = current if labels is None else _overlay(labels, current, path)
        return labels

    def describe(self) -> str:
        return str(self.paths[0]) if len(self.paths) == 1 else f"{self.paths[0]} (+{len(self.paths) - 1} objects)"


@dataclass
class RawSequence:
    """A source sequence before it is written in the DAVIS layout."""

    name: str
    frames: Callable[[], Iterator[Frame]]
    masks: dict[int, MaskSource] = field(default_factory=dict)
    boxes: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=BOX_COLUMNS).astype(int))


def read_object_labels(path: Path, threshold: int) -> np.ndarray:
    """One mask file as object labels; values <= threshold are background."""
    values = read_label_image(path)
    if values.ndim == 3:
        values = values.max(axis=2)
    if _is_palette(path):
        return np.where(values > threshold, values, 0).astype(np.uint8)
    return (values > threshold).astype(np.uint8)


def image_files(folder: Path) -> list[Path]:
    """Image files in a folder (hidden files skipped); an error if the folder is missing or a name is not
    UTF-8 (frame tables and manifests record every name)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found")
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    for path in files:
        utf8_path(path, "frame tables and manifests cannot record")
    return files


def frames_from_files(paths: list[Path]) -> Callable[[], Iterator[Frame]]:
    """Lazy frame iterator over image files, each checked by `read_image` (corrupt, truncated)."""

    def iterate() -> Iterator[Frame]:
        for path in paths:
            yield str(path), read_image(path)

    return iterate


def _overlay(labels: np.ndarray, current: np.ndarray, path: Path) -> np.ndarray:
    if current.shape != labels.shape:
        raise InputError(f"{path}: object mask is {current.shape[1]}x{current.shape[0]}, the frame's other objects are {labels.shape[1]}x{labels.shape[0]}")
    return np.where(current > 0, current, labels)


def _is_palette(path: Path) -> bool:
    from PIL import Image

    with Image.open(path) as img:
        return img.mode == "P"
