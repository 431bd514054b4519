"""Readers: each maps one source layout onto a `RawSequence` (frames, object-label masks, boxes).

Accepted layouts (SOURCE is the dataset root unless said otherwise):

* ``davis``: ``JPEGImages/<resolution>/<seq>/*.jpg`` and ``Annotations/<resolution>/<seq>/*.png``
  (grey 0/255 for DAVIS-2016, palette object ids for DAVIS-2017). Masks must cover a run of frames
  from the first one without gaps (all frames, or the first frame only as in test-dev).
* ``segtrackv2``: ``JPEGImages/<seq>/*`` (png/bmp, any names, sorted naturally) and masks with the
  frames' names in ``GroundTruth/<seq>/`` or ``GroundTruth_resampled/<seq>/``; multi-object
  sequences have one sub-folder per object (``GroundTruth/<seq>/1/``, ``2/`` ...). Every frame needs
  a mask (in every object folder).
* ``youtube-objects``: ``JPEGImages/<seq>/*.jpg`` (any names, sorted naturally) and, for the sparse
  annotated subset, ``Annotations/<seq>/<frame name>.png``; each mask stays at its frame's index.
* ``imagenet-vid``: ``Data/VID/[<split>/...]/<seq>/000000.JPEG`` and the PASCAL-VOC XML files
  ``Annotations/VID/[<split>/...]/<seq>/000000.xml`` (one per frame; boxes only, no masks).
* ``video``: a video file (or a folder of them, one sequence per file stem), decoded with OpenCV.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Iterator

import pandas as pd

from fusionseg.datasets.catalog import imagenet_vid_sequence_dirs, natural_key, video_sequences
from fusionseg.datasets.layout import BOX_COLUMNS
from fusionseg.datasets.raw import Frame, MaskSource, RawSequence, frames_from_files, image_files
from fusionseg.errors import InputError
from fusionseg.io import opencv_path


def open_source(layout: str, source: str | Path, sequence: str | None, resolution: str = "480p", mask_threshold: int = 0) -> RawSequence:
    """The sequence `sequence` of the dataset at `source` in the given layout."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"{source}: dataset root or video file does not exist")
    if layout == "video":
        return read_video_source(source, sequence)
    if not sequence:
        raise InputError(f"{source}: --sequence is required for layout '{layout}'")
    if layout == "davis":
        return read_davis(source, sequence, resolution, mask_threshold)
    if layout == "segtrackv2":
        return read_segtrack(source, sequence, mask_threshold)
    if layout == "youtube-objects":
        return read_youtube_objects(source, sequence, mask_threshold)
    if layout == "imagenet-vid":
        return read_imagenet_vid(source, sequence)
    raise InputError(f"layout '{layout}' has no reader (synthetic data is made by `fusionseg synth`)")


def read_davis(root: Path, sequence: str, resolution: str, threshold: int) -> RawSequence:
    frames = _sorted_frames(root / "JPEGImages" / resolution / sequence)
    mask_dir = root / "Annotations" / resolution / sequence
    masks = _masks_by_stem(frames, mask_dir, threshold) if mask_dir.is_dir() else {}
    _check_no_gap(masks, frames, mask_dir)
    return RawSequence(sequence, frames_from_files(frames), masks)


def read_segtrack(root: Path, sequence: str, threshold: int) -> RawSequence:
    frames = _sorted_frames(root / "JPEGImages" / sequence)
    mask_dir = _segtrack_mask_dir(root, sequence)
    object_dirs = sorted((p for p in mask_dir.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))
    per_object = [_masks_by_stem(frames, d, threshold) for d in (object_dirs or [mask_dir])]
    for object_masks, folder in zip(per_object, object_dirs or [mask_dir]):
        missing = [f.name for i, f in enumerate(frames) if i not in object_masks]
        if missing:
            raise InputError(f"{folder}: no mask for frame(s) {', '.join(missing[:5])}")
    masks = {i: MaskSource([m[i].paths[0] for m in per_object], threshold) for i in range(len(frames))}
    return RawSequence(sequence, frames_from_files(frames), masks)


def read_youtube_objects(root: Path, sequence: str, threshold: int) -> RawSequence:
    frames = _sorted_frames(root / "JPEGImages" / sequence)
    mask_dir = root / "Annotations" / sequence
    masks = _masks_by_stem(frames, mask_dir, threshold) if mask_dir.is_dir() else {}
    return RawSequence(sequence, frames_from_files(frames), masks)


def read_imagenet_vid(root: Path, sequence: str) -> RawSequence:
    folders = imagenet_vid_sequence_dirs(root)
    if sequence not in folders:
        raise InputError(f"{root / 'Data' / 'VID'}: no sequence folder '{sequence}'")
    frames = _sorted_frames(folders[sequence])
    xml_dir = root / "Annotations" / "VID" / folders[sequence].relative_to(root / "Data" / "VID")
    rows = [row for index, frame in enumerate(frames) for row in _voc_boxes(xml_dir / f"{frame.stem}.xml", index)]
    boxes = pd.DataFrame(rows, columns=BOX_COLUMNS).astype(int)
    return RawSequence(sequence, frames_from_files(frames), boxes=boxes)


def read_video_source(source: Path, sequence: str | None) -> RawSequence:
    """A video file, or the file of sequence `sequence` in a folder of videos (its stem, or the stem
    mapped by `video_name` when it has characters that names may not hold)."""
    files = video_sequences(source)
    if source.is_dir() and sequence not in files:
        wanted = f"no video file of sequence '{sequence}'" if sequence else "a folder of videos needs --sequence"
        raise InputError(f"{source}: {wanted} (a video's sequence name is its file stem, with '_' for spaces and the like)")
    name = sequence if source.is_dir() else next(iter(files))
    path = files[name]
    return RawSequence(name, lambda: _decode_video(path))


def _decode_video(path: Path) -> Iterator[Frame]:
    import cv2

    capture = cv2.VideoCapture(opencv_path(path))
    if not capture.isOpened():
        raise InputError(f"{path}: not a readable video (unknown format, corrupt or truncated file)")
    expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    count = 0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            yield f"video:{count}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            count += 1
    finally:
        capture.release()
    if count == 0 or (expected > 0 and count < expected):
        raise InputError(f"{path}: decoded {count} of {expected} frames (corrupt or truncated video)")


def _sorted_frames(folder: Path) -> list[Path]:
    frames = sorted(image_files(folder), key=lambda p: natural_key(p.name))
    if not frames:
        raise InputError(f"{folder}: no frames (empty folder)")
    return frames


def _segtrack_mask_dir(root: Path, sequence: str) -> Path:
    for name in ("GroundTruth", "GroundTruth_resampled"):
        if (root / name / sequence).is_dir():
            return root / name / sequence
    raise InputError(f"{root}: no GroundTruth/{sequence} or GroundTruth_resampled/{sequence} folder")


def _masks_by_stem(frames: list[Path], mask_dir: Path, threshold: int) -> dict[int, MaskSource]:
    """Frame index -> mask, matching file stems; a mask without a frame is an error."""
    index_of = {frame.stem: i for i, frame in enumerate(frames)}
    masks = {}
    for path in image_files(mask_dir):
        if path.stem not in index_of:
            raise InputError(f"{path}: mask has no matching frame in {frames[0].parent}")
        masks[index_of[path.stem]] = MaskSource([path], threshold)
    return masks


def _check_no_gap(masks: dict[int, MaskSource], frames: list[Path], mask_dir: Path) -> None:
    """DAVIS annotates a run of frames from the first; a hole means a lost file, not sparse labels."""
    for index in range(max(masks, default=-1) + 1):
        if index not in masks:
            raise InputError(f"{mask_dir / (frames[index].stem + '.png')}: mask missing (annotated frames must not have gaps)")


def _voc_boxes(path: Path, frame: int) -> list[list[int]]:
    """Boxes of one PASCAL-VOC XML file; VOC corners are inclusive, ours exclusive (x1 = xmax + 1)."""
    if not path.is_file():
        raise InputError(f"{path}: annotation file not found")
    try:
        objects = ElementTree.parse(path).getroot().findall("object")
        rows = []
        for obj in objects:
            box = obj.find("bndbox")
            x0, y0, x1, y1 = (int(float(box.find(k).text)) for k in ("xmin", "ymin", "xmax", "ymax"))
            rows.append([frame, x0, y0, x1 + 1, y1 + 1])
    except (ElementTree.ParseError, AttributeError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable PASCAL-VOC annotation ({exc})") from exc
    return rows

