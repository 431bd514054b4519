"""What `fusionseg segment` accepts: video files, folders of images, folders of videos and DAVIS-layout
roots (their masks, if any, are ignored), each mapped onto the readers' `RawSequence`; and the native
frames of a workflow dataset's sequence again, for the segment role's overlay videos."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusionseg.datasets.catalog import natural_key, video_files, video_sequences
from fusionseg.datasets.layout import Sequence, check_sequence_name, list_layout_sequences
from fusionseg.datasets.raw import RawSequence, frames_from_files, image_files
from fusionseg.datasets.readers import open_source, read_video_source
from fusionseg.errors import InputError
from fusionseg.io import read_image
from fusionseg.segment.video import video_fps


@dataclass(frozen=True)
class Source:
    """One sequence to segment: its output name, where it comes from, its frames and frame rate."""

    name: str
    path: Path
    raw: RawSequence
    fps: float | None

    def native_frames(self) -> Iterator[np.ndarray]:
        return (frame for _, frame in self.raw.frames())


def find_sources(paths: list[str | Path]) -> list[Source]:
    """The sequences in the given files and folders, in order; names must be distinct."""
    sources = [source for path in paths for source in _sources_in(Path(path))]
    seen: dict[str, Path] = {}
    for source in sources:
        check_sequence_name(source.name, source.path)
        if source.name in seen:
            raise InputError(f"{source.path}: gives sequence name '{source.name}' as {seen[source.name]} does; rename one")
        seen[source.name] = source.path
    return sources


def check_has_two_frames(source: Source) -> None:
    """Flow needs a next frame: a one-frame clip is refused before any work starts (decodes two frames)."""
    frames = source.raw.frames()
    try:
        count = sum(1 for _ in itertools.islice(frames, 2))
    finally:
        frames.close()
    if count < 2:
        raise InputError(
            f"{source.path}: only {count} frame: FusionSeg's motion stream needs optical flow between consecutive "
            "frames, so give a clip (or folder) of at least 2 frames"
        )


def _sources_in(path: Path) -> list[Source]:
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file():
        return [_video(path)]
    if (path / "JPEGImages").is_dir():
        return [_davis_sequence(path, name) for name in list_layout_sequences(path)]
    images = sorted(image_files(path), key=lambda p: natural_key(p.name))
    if images:
        name = path.resolve().name  # `segment .` is named after the current folder
        return [Source(name, path, RawSequence(name, frames_from_files(images)), None)]
    videos = video_files(path)
    if videos:
        return [_video(video) for video in videos]
    raise InputError(f"{path}: no images or videos in this folder")


def _video(path: Path) -> Source:
    return Source(path.stem, path, read_video_source(path, None), video_fps(path))


def _davis_sequence(root: Path, name: str) -> Source:
    """A DAVIS-layout sequence, frames only: there is nothing to score, so masks are not read."""
    raw = open_source("davis", root, name)
    return Source(name, root / "JPEGImages" / "480p" / name, RawSequence(name, raw.frames), None)


def dataset_frames(frames_dir: str | Path, layout: str | None, root: str | Path | None,
                   resolution: str = "480p") -> Callable[[], Iterator[np.ndarray]]:
    """The native-size frames of a workflow sequence: re-read from its source (`layout`, `root`), or,
    without a source (synthetic clips, rendered at their native size), its frame folder."""
    sequence = Sequence.from_frames_dir(frames_dir)
    if root is None:
        return lambda: (read_image(path) for path in sequence.frame_paths())
    raw = open_source(layout, root, sequence.name, resolution)
    return lambda: (frame for _, frame in raw.frames())


def dataset_fps(layout: str | None, root: str | Path | None, name: str) -> float | None:
    """A video source's frame rate; None for frame folders."""
    if layout != "video" or root is None:
        return None
    files = video_sequences(Path(root))
    path = next(iter(files.values())) if Path(root).is_file() else files.get(name)
    return video_fps(path) if path else None
