"""Overlay videos through OpenCV's VideoWriter (WebM, VP8: browsers play it), and reading frame rates
and frames back."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from fusionseg.errors import InputError
from fusionseg.io import opencv_path

# DAVIS and most of its relatives were shot at 24 frames per second; image folders carry no rate.
DEFAULT_FPS = 24.0
# The report plays the overlays in an HTML5 <video>. OpenCV's pip wheels have no H.264 encoder (their
# FFmpeg has no libx264) and the MPEG-4 Part 2 (mp4v) they write plays in no browser; they do have
# libvpx. VP8 in WebM plays in Chrome, Edge, Firefox and Safari (macOS 11.3+), and encodes ~6x faster
# here than VP9, which Safari plays only with hardware decoding. (The overlays' names, .webm, are the
# segmented folder's contract: fusionseg.report.segmented.)
FOURCC = "VP80"


def video_fps(path: str | Path) -> float | None:
    """The frame rate a video file declares, or None when it declares none."""
    capture = cv2.VideoCapture(opencv_path(path))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    finally:
        capture.release()
    return float(fps) if fps and fps > 0 else None


def even_size(width: int, height: int) -> tuple[int, int]:
    """OpenCV's writer codes even sizes only (4:2:0 chroma); odd ones lose their last column or row, as
    the writer would do itself."""
    return width - width % 2, height - height % 2


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Encode RGB frames (all one size) as a WebM (VP8) file at `fps`; returns the frame count."""
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


def _open_writer(path: Path, size: tuple[int, int], fps: float) -> cv2.VideoWriter:
    if min(size) < 2:
        raise InputError(f"{path}: frames of {size[0]}x{size[1]} are too small for a video")
    with _native_stderr_silenced():
        writer = cv2.VideoWriter(opencv_path(path), cv2.VideoWriter_fourcc(*FOURCC), float(fps), size)
    if not writer.isOpened():
        raise InputError(f"{path}: OpenCV cannot write {FOURCC} WebM video here (no VP8 encoder in this OpenCV build)")
    return writer


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 points at /dev/null inside. OpenCV prints "tag 'VP80' is not supported with
    codec id 139 and format 'webm'" to it whenever it opens a WebM writer (its fourcc tables have no WebM
    entries; the file is right, and OpenCV will not change it: opencv/opencv#8919); a step's stderr is
    for its one error line. Whether the writer opened is checked after."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
