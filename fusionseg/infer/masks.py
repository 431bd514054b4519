"""Masks at the source's native size from probabilities (or any score map) at the network's size.

The official protocols score against ground truth at its native resolution (DAVIS: 854x480), whatever
size the networks saw. So every method's scores are resized to the source frames' size first, with
bilinear interpolation (half-pixel centres, as F.interpolate with align_corners=False), and only then
thresholded: thresholding first and enlarging the binary mask would give staircase outlines.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fusionseg.datasets.layout import Sequence, frame_name
from fusionseg.errors import InputError
from fusionseg.io import atomic_dir, write_labels, write_mask

Size = tuple[int, int]  # (width, height)


def fitted_size(frames_dir: str | Path, shape: tuple[int, ...], path: str | Path, kind: str = "probabilities") -> Size:
    """(width, height) of the source of `frames_dir`'s frames, once maps of `shape` ((N, ..., H, W), read
    from `path`) are seen to be that sequence's: one per frame, with the source's aspect ratio. An
    InputError names `path` otherwise: resized to the source, they would give wrong masks silently."""
    sequence = Sequence.from_frames_dir(frames_dir)
    frames = len(sequence.frame_paths())
    width, height = sequence.source_size()
    count, (map_height, map_width) = shape[0], shape[-2:]
    if count != frames:
        raise InputError(f"{path}: {kind} for {count} frame(s), but {frames_dir} has {frames} (another sequence's?)")
    # The networks' size is the source's scaled and rounded, each side by less than a pixel, so the
    # cross products differ by less than width + height; another aspect ratio differs by more.
    if abs(map_width * height - map_height * width) > width + height:
        raise InputError(
            f"{path}: {kind} of {map_width}x{map_height}, not the shape of {frames_dir}'s source ({width}x{height}): "
            "they are another sequence's, and resizing them would stretch the masks"
        )
    return width, height


def resize_scores(scores: np.ndarray, size: Size) -> np.ndarray:
    """A float (H, W) or (K, H, W) map resized bilinearly to `size` (width, height)."""
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim == 3:
        return np.stack([resize_scores(plane, size) for plane in scores])
    if (scores.shape[1], scores.shape[0]) == tuple(size):
        return scores
    return cv2.resize(scores, tuple(size), interpolation=cv2.INTER_LINEAR)


def object_labels(object_probs: np.ndarray, object_ids: list[int]) -> np.ndarray:
    """Per-object probabilities (K, H, W) -> ids: the likeliest of background (1 - sum) and objects."""
    background = np.clip(1.0 - object_probs.sum(axis=0, keepdims=True), 0.0, 1.0)
    winner = np.concatenate([background, object_probs]).argmax(axis=0)
    return np.asarray([0, *object_ids], dtype=np.uint8)[winner]


def write_masks(probs_path: str | Path, out_dir: str | Path, threshold: float = 0.5, size: Size | None = None) -> int:
    """Masks 00000.png.. from a probability file, resized to `size` (width, height) when given.

    Single-foreground files give DAVIS 0/255 masks (probability > threshold); per-object files give
    object ids as grey values. The folder appears whole or not at all; returns the frame count.
    """
    from fusionseg.infer.probs import read_object_ids, read_probs

    probs = read_probs(probs_path)
    object_ids = read_object_ids(probs_path)
    with atomic_dir(out_dir, "masks", [probs_path]) as tmp:
        for index, prob in enumerate(tqdm(probs, desc=f"masks {Path(probs_path).stem}", leave=False)):
            resized = resize_scores(prob, size) if size else prob
            path = tmp / f"{frame_name(index)}.png"
            if object_ids is None:
                write_mask(path, resized > threshold)
            else:
                write_labels(path, object_labels(resized, object_ids))
    return len(probs)
