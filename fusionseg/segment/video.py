"""MP4 overlay videos through OpenCV's VideoWriter, and reading frame rates and frames back."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from fusionseg.errors import InputError
from fusionseg.io import opencv_path

# DAVIS and most of its relatives were shot at 24 frames per second; image folders carry no rate.
DEFAULT_FPS = 24.0
# MPEG-4 Part 2: the encoder every OpenCV wheel has (H.264 needs a licensed FFmpeg build).
FOURCC = "mp4v"


def video_fps(path: str | Path) -> float | None:
    """The frame rate a video file declares, or None when it declares none."""
    capture = cv2.VideoCapture(opencv_path(path))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    finally:
        capture.release()
    return float(fps) if fps and fps > 0 else None


def even_size(width: int, height: int) -> tuple[int, int]:
    """MPEG-4 codes even sizes only; odd ones lose their last column or row (as the encoder would)."""
    return width - width % 2, height - height % 2


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Encode RGB frames (all one size) as an MP4 file at `fps`; returns the frame count."""
    path = Path(path)
    writer, size, count = None, None, 0
    try:
        for frame in frames:
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = _open_writer(path, even_size(*size), fps)
            if (frame.shape[1], frame.shape[0]) != size:
                raise InputError(f"{path}: frame {count} is {frame.shape[1]}x{frame.shape[0]}, the first was {size[0]}x{size[1]}")
            width, height = even_size(*size)
            writer.write(np.ascontiguousarray(cv2.cvtColor(frame[:height, :width], cv2.COLOR_RGB2BGR)))
            count += 1
    finally:
        if writer is not None:
            writer.release()
    if count == 0:
        raise InputError(f"{path}: no frames to write")
    return count


def read_video(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of a video file as RGB arrays, in order."""
    capture = cv2.VideoCapture(opencv_path(path))
    if not capture.isOpened():
        raise InputError(f"{path}: not a readable video")
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def _open_writer(path: Path, size: tuple[int, int], fps: float) -> cv2.VideoWriter:
    if min(size) < 2:
        raise InputError(f"{path}: frames of {size[0]}x{size[1]} are too small for a video")
    writer = cv2.VideoWriter(opencv_path(path), cv2.VideoWriter_fourcc(*FOURCC), float(fps), size)
    if not writer.isOpened():
        raise InputError(f"{path}: OpenCV cannot write {FOURCC} MP4 video here (no encoder in this OpenCV build)")
    return writer
