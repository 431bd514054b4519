"""Write a `RawSequence` in the DAVIS layout, atomically per sequence.

Everything for one sequence (frames, both mask folders, boxes, frame table, and flow for synthetic
clips) is written into a hidden staging folder under the output root and published when complete.
The DAVIS layout spreads a sequence over six places, so publishing is several renames; they are made
one step for readers: a marker `<root>/.<seq>.publishing`, held as an exclusive lock, stands while the
parts move (concurrent runs publish one after the other, the last wins whole); readers wait for it
(`Sequence.check_published`). A run killed meanwhile leaves the marker, and readers refuse the sequence
until the next run publishes it again; that run also removes the staging folders killed runs left.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from fusionseg.datasets.layout import BOX_COLUMNS, TABLE_COLUMNS, Sequence, frame_name
from fusionseg.datasets.raw import RawSequence
from fusionseg.errors import InputError
from fusionseg.io import temporary_path, write_faults_named, write_image, write_labels, write_mask

JPEG_QUALITY = 95


@dataclass(frozen=True)
class ExtractOptions:
    """How a source is mapped: size and length limits, and what to do with object ids."""

    max_side: int | None = None
    max_frames: int | None = None
    merge_objects: bool = True
    boxes_from_masks: bool = False


def write_sequence(raw: RawSequence, out_root: str | Path, options: ExtractOptions = ExtractOptions()) -> Sequence:
    """Decode, check, resize and write one sequence; returns the written `Sequence`."""
    if options.boxes_from_masks and not raw.masks:
        raise InputError(f"{raw.name}: boxes from masks asked for, but the source has no masks")
    with staged_sequence(out_root, raw.name) as staged:
        table, labels, scale = _write_frames_and_masks(raw, staged, options)
        if options.boxes_from_masks:
            boxes = boxes_from_labels(labels)
        else:
            boxes = _scaled_boxes(raw.boxes, table, scale)
        write_tables(staged, table, boxes)
    return Sequence(out_root, raw.name)


# The places of one sequence in a DAVIS-layout root, all replaced when it is published.
SEQUENCE_PARTS = ("frames_dir", "masks_dir", "source_masks_dir", "flow_dir", "boxes_path", "table_path")


@contextlib.contextmanager
def staged_sequence(out_root: str | Path, name: str) -> Iterator[Sequence]:
    """Yield a `Sequence` in a staging folder; on success publish it under `out_root` as one step."""
    final = Sequence(out_root, name)
    with write_faults_named(final.frames_dir):
        stage = temporary_path(Path(out_root) / name, directory=True)
        try:
            staged = Sequence(stage, name)
            staged.masks_dir.mkdir(parents=True)
            staged.source_masks_dir.mkdir(parents=True)
            yield staged
            publish(staged, final)
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def publish(staged: Sequence, final: Sequence) -> None:
    """Replace every part of `final` by the staged one (a part the staged sequence lacks is removed),
    while holding the sequence's publishing marker."""
    with _publishing(final):
        for part in SEQUENCE_PARTS:
            _replace(getattr(staged, part), getattr(final, part))


@contextlib.contextmanager
def _publishing(sequence: Sequence) -> Iterator[None]:
    """Hold the publishing marker as an exclusive lock: concurrent publishers and readers wait for it.
    It is removed once every part is in place, and stays (readers refuse the sequence) when the
    process dies or fails before."""
    marker = sequence.publishing_marker
    while True:
        handle = open(marker, "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        if _same_file(marker, handle):
            break
        handle.close()  # its holder finished and removed it while we waited: lock the current one
    try:
        yield
        marker.unlink()
    finally:
        handle.close()


def _same_file(path: Path, handle) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def write_tables(sequence: Sequence, table: pd.DataFrame, boxes: pd.DataFrame) -> None:
    """The frame table and the boxes csv (always written, possibly without rows)."""
    sequence.table_path.parent.mkdir(parents=True, exist_ok=True)
    sequence.boxes_path.parent.mkdir(parents=True, exist_ok=True)
    table[TABLE_COLUMNS].to_csv(sequence.table_path, index=False)
    boxes[BOX_COLUMNS].astype(int).to_csv(sequence.boxes_path, index=False)


def boxes_from_labels(labels: dict[int, np.ndarray]) -> pd.DataFrame:
    """One box per object id per frame (sources without ids have one); empty masks give no box."""
    rows = []
    for frame in sorted(labels):
        for object_id in np.unique(labels[frame]):
            if object_id:
                rows.append([frame, *mask_box(labels[frame] == object_id)])
    return pd.DataFrame(rows, columns=BOX_COLUMNS).astype(int)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight box (x0, y0, x1, y1) of a non-empty bool mask, x1 and y1 exclusive."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def target_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) after shrinking so the longer side is at most `max_side` (never enlarged)."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _write_frames_and_masks(
    raw: RawSequence, staged: Sequence, options: ExtractOptions
) -> tuple[pd.DataFrame, dict[int, np.ndarray], tuple[float, float]]:
    """Frames (JPEG) and masks (PNG) into the staging folder; the frame table, labels and resize scale."""
    staged.frames_dir.mkdir(parents=True)
    rows, labels, first_size = [], {}, None
    for index, (source, frame) in enumerate(tqdm(raw.frames(), desc=f"extract {raw.name}", unit="frame", leave=False)):
        if options.max_frames and index >= options.max_frames:
            break
        size = (frame.shape[1], frame.shape[0])
        first_size = first_size or size
        if size != first_size:
            raise InputError(f"{source}: frame is {size[0]}x{size[1]}, but the sequence's first frame is {first_size[0]}x{first_size[1]}")
        out_size = target_size(*size, options.max_side)
        write_image(staged.frames_dir / f"{frame_name(index)}.jpg", _resize(frame, out_size, cv2.INTER_AREA), JPEG_QUALITY)
        if index in raw.masks:
            labels[index] = _write_mask(raw, index, size, out_size, staged, options.merge_objects)
        rows.append([index, source, *out_size, index in raw.masks, *size])
    if len(rows) < 2:
        raise InputError(f"{raw.name}: a sequence needs at least 2 frames, the source has {len(rows)}")
    scale = (out_size[0] / first_size[0], out_size[1] / first_size[1])
    return pd.DataFrame(rows, columns=TABLE_COLUMNS), labels, scale


def _write_mask(raw: RawSequence, index: int, size: tuple[int, int], out_size: tuple[int, int], staged: Sequence, merge: bool) -> np.ndarray:
    """Check the mask against its frame, resize it (nearest) and write it; returns its object labels."""
    source = raw.masks[index]
    labels = source.read()
    if (labels.shape[1], labels.shape[0]) != size:
        raise InputError(f"{source.describe()}: mask is {labels.shape[1]}x{labels.shape[0]} but its frame is {size[0]}x{size[1]}")
    name = f"{frame_name(index)}.png"
    # The native-size copy is what results are scored against; the resized one trains the networks.
    _write_labels(staged.source_masks_dir / name, labels, merge)
    labels = _resize(labels, out_size, cv2.INTER_NEAREST)
    _write_labels(staged.masks_dir / name, labels, merge)
    return labels


def _write_labels(path: Path, labels: np.ndarray, merge: bool) -> None:
    """Merged masks are DAVIS-2016 style 0/255; unmerged ones keep the object ids as grey values."""
    if merge:
        write_mask(path, labels > 0)
    else:
        write_labels(path, labels)


def _resize(image: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == size:
        return image
    return cv2.resize(image, size, interpolation=interpolation)


def _scaled_boxes(boxes: pd.DataFrame, table: pd.DataFrame, scale: tuple[float, float]) -> pd.DataFrame:
    """Source boxes of the kept frames, scaled like the frames and clipped to them (rounded outwards)."""
    boxes = boxes[boxes["frame"] < len(table)]
    width, height = int(table["width"].iloc[0]), int(table["height"].iloc[0])
    scaled = pd.DataFrame({
        "frame": boxes["frame"],
        "x0": np.clip(np.floor(boxes["x0"] * scale[0]), 0, width),
        "y0": np.clip(np.floor(boxes["y0"] * scale[1]), 0, height),
        "x1": np.clip(np.ceil(boxes["x1"] * scale[0]), 0, width),
        "y1": np.clip(np.ceil(boxes["y1"] * scale[1]), 0, height),
    })
    return scaled[(scaled["x1"] > scaled["x0"]) & (scaled["y1"] > scaled["y0"])].astype(int)


def _replace(staged: Path, final: Path) -> None:
    if final.is_dir():
        shutil.rmtree(final)
    if not staged.exists():
        final.unlink(missing_ok=True)
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, final)
