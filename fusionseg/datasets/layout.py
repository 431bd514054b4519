"""The DAVIS layout every stage reads: the pipeline's lingua franca for frames, masks and boxes.

    <root>/JPEGImages/480p/<seq>/00000.jpg   frames, numbered from 0, five digits
    <root>/Annotations/480p/<seq>/00000.png  binary masks (0 / 255); may be sparse (annotated frames only)
    <root>/Annotations/source/<seq>/00000.png the same masks at the source's native size (what is scored)
    <root>/Boxes/<seq>.csv                   per-frame boxes: frame, x0, y0, x1, y1 (pixels; x1, y1 exclusive)
    <root>/Tables/<seq>.csv                  frame table: index, source, width, height, annotated,
                                             source_width, source_height (the native size)
    <root>/Flow/<seq>/00000.flo              ground-truth forward flow (synthetic data only)

The folder is called 480p whatever the frames' real size, as DAVIS tools expect. Frames may be shrunk
(max_side) for the networks; results are scored against Annotations/source at the native size.
"""

from __future__ import annotations

import fcntl
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fusionseg.errors import InputError
from fusionseg.io import read_image, read_mask, read_table

RESOLUTION = "480p"
SOURCE_RESOLUTION = "source"
BOX_COLUMNS = ["frame", "x0", "y0", "x1", "y1"]
TABLE_COLUMNS = ["index", "source", "width", "height", "annotated", "source_width", "source_height"]


def frame_name(index: int) -> str:
    return f"{index:05d}"


def check_sequence_name(name: str, where: str | Path) -> None:
    """An InputError naming `where` when `name` cannot name a sequence: its folders, tables and outputs
    are named after it, so it must be a folder name, and valid UTF-8 (tables, reports, OpenCV)."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        problem = "cannot name a folder"
    else:
        try:
            name.encode("utf-8")
            return
        except UnicodeEncodeError:
            problem = "is not valid UTF-8"
    raise InputError(f"{where}: sequence name {name!r} {problem}: rename it")


@dataclass(frozen=True)
class Sequence:
    """One sequence of a DAVIS-layout root."""

    root: Path
    name: str
    resolution: str = RESOLUTION

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        check_sequence_name(self.name, self.root)

    @classmethod
    def from_frames_dir(cls, frames_dir: str | Path) -> "Sequence":
        """The sequence whose frames are in `<root>/JPEGImages/<resolution>/<name>` (what rules pass)."""
        frames_dir = Path(frames_dir)
        if frames_dir.parent.parent.name != "JPEGImages":
            raise InputError(f"{frames_dir}: not a DAVIS-layout frame folder (<root>/JPEGImages/480p/<seq>)")
        return cls(frames_dir.parents[2], frames_dir.name, frames_dir.parent.name)

    @property
    def frames_dir(self) -> Path:
        return self.root / "JPEGImages" / self.resolution / self.name

    @property
    def masks_dir(self) -> Path:
        return self.root / "Annotations" / self.resolution / self.name

    @property
    def source_masks_dir(self) -> Path:
        return self.root / "Annotations" / SOURCE_RESOLUTION / self.name

    @property
    def boxes_path(self) -> Path:
        return self.root / "Boxes" / f"{self.name}.csv"

    @property
    def table_path(self) -> Path:
        return self.root / "Tables" / f"{self.name}.csv"

    @property
    def flow_dir(self) -> Path:
        return self.root / "Flow" / self.name

    @property
    def publishing_marker(self) -> Path:
        """Stands while `extract-frames` (or `synth`) moves the sequence's parts into place, and after a
        run was killed doing so: the parts may then come from two runs (`datasets.writer.publish`)."""
        return self.root / f".{self.name}.publishing"

    def check_published(self) -> None:
        """Wait while another process publishes the sequence; an error naming it when a publication
        was left unfinished (its parts may come from two runs)."""
        if not self.publishing_marker.exists():
            return
        try:
            with open(self.publishing_marker) as marker:
                fcntl.flock(marker, fcntl.LOCK_SH)  # the publisher holds it exclusively until done
        except FileNotFoundError:
            return
        if self.publishing_marker.exists():
            raise InputError(
                f"{self.frames_dir}: sequence incomplete: an extract-frames run was killed while publishing "
                f"it ({self.publishing_marker.name}); run extract-frames for it again"
            )

    def frame_paths(self) -> list[Path]:
        """The frames in order; an error if the folder is missing, empty, or has gaps."""
        self.check_published()
        return numbered_images(self.frames_dir, "frame")

    def mask_paths(self) -> dict[int, Path]:
        """Annotated frames: frame index -> mask path (empty when the sequence has no masks)."""
        self.check_published()
        if not self.masks_dir.is_dir():
            return {}
        return {int(p.stem): p for p in sorted(self.masks_dir.glob("*.png"))}

    def read_frame(self, index: int) -> np.ndarray:
        return read_image(self.frame_paths()[index])

    def read_frames(self) -> np.ndarray:
        """All frames as (N, H, W, 3) uint8 RGB; an error naming the frame if sizes differ."""
        frames = [read_image(p) for p in self.frame_paths()]
        _check_same_size(frames, self.frame_paths())
        return np.stack(frames)

    def read_mask(self, index: int) -> np.ndarray:
        """The bool mask of frame `index`, checked against the frame's size."""
        paths = self.mask_paths()
        if index not in paths:
            raise InputError(f"{self.masks_dir}: no mask for frame {frame_name(index)}")
        mask = read_mask(paths[index])
        frame = self.frame_paths()[index]
        height, width = read_image(frame).shape[:2]
        if mask.shape != (height, width):
            raise InputError(
                f"{paths[index]}: mask is {mask.shape[1]}x{mask.shape[0]} but frame {frame.name} is {width}x{height}"
            )
        return mask

    def boxes(self) -> pd.DataFrame:
        """Per-frame boxes (columns frame, x0, y0, x1, y1), possibly no rows; an error when the boxes
        file is missing (extract-frames always writes one) or not a boxes table."""
        self.check_published()
        table = read_table(self.boxes_path, "boxes file", BOX_COLUMNS)
        try:
            return table[BOX_COLUMNS].astype(int)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{self.boxes_path}: boxes must be whole numbers of pixels ({exc})") from exc

    def table(self) -> pd.DataFrame:
        self.check_published()
        return read_table(self.table_path, "frame table", TABLE_COLUMNS)

    def source_size(self) -> tuple[int, int]:
        """(width, height) of the source frames, before any resizing for the networks."""
        first = self.table().iloc[0]
        return int(first["source_width"]), int(first["source_height"])


def numbered_images(folder: str | Path, kind: str = "image") -> list[Path]:
    """The images 00000, 00001, ... (PNG or JPEG) of a folder, in order: frames, flow images, masks.
    An error names the folder when it is missing, holds none, or their numbers have gaps."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: {kind} folder not found")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        raise InputError(f"{folder}: no {kind}s (empty folder)")
    if [p.stem for p in paths] != [frame_name(i) for i in range(len(paths))]:
        raise InputError(f"{folder}: {kind}s must be numbered 00000, 00001, ... without gaps")
    return paths


def list_layout_sequences(root: Path, resolution: str = RESOLUTION) -> list[str]:
    """Sequence names of a DAVIS-layout root (sorted folder names under JPEGImages/<resolution>)."""
    base = Path(root) / "JPEGImages" / resolution
    if not base.is_dir():
        raise InputError(f"{base}: not a DAVIS-layout root (no JPEGImages/{resolution} folder)")
    return sorted(p.name for p in base.iterdir() if p.is_dir())


def _check_same_size(frames: list[np.ndarray], paths: list[Path]) -> None:
    first = frames[0].shape[:2]
    for frame, path in zip(frames, paths):
        if frame.shape[:2] != first:
            raise InputError(
                f"{path}: frame is {frame.shape[1]}x{frame.shape[0]}, but {paths[0].name} is {first[1]}x{first[0]}"
            )
