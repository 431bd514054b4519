"""Training clips for TSN: short frame samples with one target object, from video or still images.

Three kinds of source, each giving clips of `count` frames with object-id labels:
  - annotated video (DAVIS layout; 0/255 masks are one object, grey-value ids several);
  - synthetic clips rendered in memory (`fusionseg.datasets.synthetic`, exact object ids);
  - still images with masks (an image cache, or single annotated frames), each frame a random affine
    warp of the same image (STM/STCN static-image pre-training).
Labels follow one rule: objects are the ids 1..254 and 255 is void; a mask with no id in 1..254 but
255 present (a 0/255 DAVIS-2016 mask) is one object, 255. Every random choice comes from the
(seed, iteration) generator, so a batch depends on nothing but its iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence as SequenceType

import cv2
import numpy as np
import torch
from tqdm import tqdm

from fusionseg.datasets.layout import Sequence, frame_name
from fusionseg.datasets.synthetic import SynthParams, render_clip
from fusionseg.errors import InputError
from fusionseg.io import read_image, read_label_image
from fusionseg.train.data import IGNORE, SampleSource, iteration_generator

VOID = 255
# A crop keeps the target when its first frame shows at least this many target pixels.
MIN_TARGET_PIXELS = 64
CROP_TRIES = 8
CLIP_TRIES = 10
# Static-image clips: per-frame affine ranges (degrees, scale factor, shear, translation fraction).
ROTATION, SCALE, SHEAR, SHIFT = 20.0, 0.1, 0.1, 0.08
Clip = tuple[np.ndarray, np.ndarray]  # frames (T, H, W, 3) uint8 RGB, labels (T, H, W) uint8


def object_ids(labels: np.ndarray) -> list[int]:
    """The objects of a label image (see the module docstring for the rule)."""
    values = np.unique(labels)
    ids = [int(v) for v in values if 0 < v < VOID]
    return ids or ([VOID] if VOID in values else [])


def read_labels(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A mask PNG's raw labels, checked against its frame's (height, width)."""
    labels = read_label_image(path)
    if labels.ndim == 3:
        labels = labels.max(axis=2)
    if labels.shape != shape:
        raise InputError(f"{path}: mask is {labels.shape[1]}x{labels.shape[0]} but its frame is {shape[1]}x{shape[0]}")
    return labels.astype(np.uint8)


class ClipSource(Protocol):
    def __len__(self) -> int: ...

    def clip(self, index: int, count: int, max_gap: int, generator: torch.Generator) -> Clip: ...


@dataclass
class _Video:
    """One sequence: frames read on demand (folders) or held (synthetic), its annotated frame indices."""

    name: str
    annotated: list[int]
    frame_paths: list[Path] | None = None
    mask_paths: dict[int, Path] | None = None
    frames: np.ndarray | None = None
    labels: np.ndarray | None = None

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.frames is not None:
            return self.frames[index], self.labels[index]
        frame = read_image(self.frame_paths[index])
        return frame, read_labels(self.mask_paths[index], frame.shape[:2])


class VideoClips:
    """Clips of annotated frames from video: a start frame with an object, then frames at most
    `max_gap` annotated frames apart, in either temporal direction."""

    def __init__(self, videos: list[_Video], count: int, what: str):
        self.videos = [v for v in videos if len(v.annotated) >= count]
        if not self.videos:
            raise InputError(f"{what}: no sequence with {count} or more annotated frames to train on")

    @classmethod
    def from_frames_dirs(cls, frames_dirs: SequenceType[str | Path], count: int) -> "VideoClips":
        videos = []
        for frames_dir in frames_dirs:
            sequence = Sequence.from_frames_dir(frames_dir)
            paths = sequence.frame_paths()
            masks = sequence.mask_paths()
            for index in masks:
                if index >= len(paths):
                    raise InputError(f"{sequence.masks_dir}: mask {frame_name(index)} has no frame (sequence has {len(paths)})")
            videos.append(_Video(sequence.name, sorted(masks), frame_paths=paths, mask_paths=masks))
        return cls(videos, count, ", ".join(map(str, frames_dirs)))

    @classmethod
    def synthetic(cls, clips: int, params: SynthParams, count: int) -> "VideoClips":
        videos = []
        for index in tqdm(range(clips), desc="render synthetic clips", leave=False):
            name = f"tsn{index:03d}"
            clip = render_clip(name, params)
            videos.append(_Video(name, list(range(params.frames)), frames=clip.frames, labels=clip.layers))
        return cls(videos, count, "synthetic clips")

    def __len__(self) -> int:
        return len(self.videos)

    def clip(self, index: int, count: int, max_gap: int, generator: torch.Generator) -> Clip:
        video = self.videos[index]
        positions = _frame_positions(len(video.annotated), count, max_gap, generator)
        pairs = [video.read(video.annotated[p]) for p in positions]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _frame_positions(length: int, count: int, max_gap: int, generator: torch.Generator) -> list[int]:
    """`count` distinct positions in 0..length-1, consecutive ones 1..max_gap apart, random direction."""
    gaps = [1 + int(torch.randint(max(1, max_gap), (), generator=generator)) for _ in range(count - 1)]
    span = sum(gaps)
    while span > length - 1:  # shrink the largest gap until the clip fits the sequence
        gaps[gaps.index(max(gaps))] -= 1
        span -= 1
    start = int(torch.randint(length - span, (), generator=generator))
    positions = [start]
    for gap in gaps:
        positions.append(positions[-1] + gap)
    if bool(torch.rand((), generator=generator) < 0.5):
        positions.reverse()
    return positions


class StillClips:
    """Clips made from still images: every frame is the image and its mask under its own random affine."""

    def __init__(self, samples: SampleSource):
        if len(samples) == 0:
            raise InputError("still images: no samples")
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def clip(self, index: int, count: int, max_gap: int, generator: torch.Generator) -> Clip:
        image, labels = self.samples[index]
        warped = [_random_affine(image, labels, generator) for _ in range(count)]
        return np.stack([w[0] for w in warped]), np.stack([w[1] for w in warped])


class AnnotatedStills:
    """The annotated frames of DAVIS-layout sequences as still (image, labels) samples, read on demand."""

    def __init__(self, videos: VideoClips):
        self.items = [(video, index) for video in videos.videos for index in video.annotated]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        video, frame = self.items[index]
        return video.read(frame)


def _random_affine(image: np.ndarray, labels: np.ndarray, generator: torch.Generator) -> Clip:
    """Rotate, scale, shear and shift about the centre; uncovered pixels are black and background."""
    height, width = labels.shape
    u = torch.rand(5, generator=generator).numpy() * 2 - 1
    angle, scale, shear = math.radians(ROTATION * u[0]), 1 + SCALE * u[1], SHEAR * u[2]
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    linear = np.array([[cos, -sin + shear], [sin, cos]])
    centre = np.array([width / 2, height / 2])
    offset = centre - linear @ centre + np.array([SHIFT * u[3] * width, SHIFT * u[4] * height])
    matrix = np.hstack([linear, offset[:, None]]).astype(np.float32)
    frame = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    warped = cv2.warpAffine(labels, matrix, (width, height), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    return frame, warped


class ClipMix:
    """Several clip sources; each sample first picks a source uniformly, then an item of it."""

    def __init__(self, sources: SequenceType[ClipSource]):
        if not sources:
            raise InputError("no training data given")
        self.sources = list(sources)

    def sample(self, count: int, max_gap: int, generator: torch.Generator) -> Clip:
        source = self.sources[int(torch.randint(len(self.sources), (), generator=generator))]
        return source.clip(int(torch.randint(len(source), (), generator=generator)), count, max_gap, generator)


def target_clip(mix: ClipMix, params: dict, max_gap: int, generator: torch.Generator) -> Clip:
    """One augmented training clip: frames (T, C, C, 3) and targets (T, C, C) in {0, 1, 255 ignore}
    for one object visible in its first frame (drawn again when the first frame shows none)."""
    for _ in range(CLIP_TRIES):
        frames, labels = mix.sample(params["frames_per_clip"], max_gap, generator)
        present = object_ids(labels[0])
        if present:
            target = present[int(torch.randint(len(present), (), generator=generator))]
            return _augment(frames, _binary_targets(labels, target), params, generator)
    raise InputError("training data: no object in the first frame of any drawn clip (empty masks?)")


def _binary_targets(labels: np.ndarray, target: int) -> np.ndarray:
    """Target object 1, everything else 0, void 255 (only when the labels are ids, see object_ids)."""
    binary = (labels == target).astype(np.uint8)
    if target != VOID:
        binary[labels == VOID] = IGNORE
    return binary


def _augment(frames: np.ndarray, targets: np.ndarray, params: dict, generator: torch.Generator) -> Clip:
    """One random scale, crop (keeping the target in the first frame) and flip for the whole clip."""
    low, high = params["scale_range"]
    scale = low + (high - low) * float(torch.rand((), generator=generator))
    height, width = targets.shape[1:]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames])
    targets = np.stack([cv2.resize(t, size, interpolation=cv2.INTER_NEAREST) for t in targets])
    crop = params["crop_size"]
    frames, targets = _pad_clip(frames, targets, crop)
    top, left = _crop_origin(targets[0], crop, generator)
    frames = frames[:, top : top + crop, left : left + crop]
    targets = targets[:, top : top + crop, left : left + crop]
    if params["hflip"] and bool(torch.rand((), generator=generator) < 0.5):
        frames, targets = frames[:, :, ::-1], targets[:, :, ::-1]
    return np.ascontiguousarray(frames), np.ascontiguousarray(targets)


def _pad_clip(frames: np.ndarray, targets: np.ndarray, crop: int) -> Clip:
    pad_y, pad_x = max(crop - targets.shape[1], 0), max(crop - targets.shape[2], 0)
    if pad_y or pad_x:
        frames = np.pad(frames, ((0, 0), (0, pad_y), (0, pad_x), (0, 0)))
        targets = np.pad(targets, ((0, 0), (0, pad_y), (0, pad_x)), constant_values=IGNORE)
    return frames, targets


def _crop_origin(first: np.ndarray, crop: int, generator: torch.Generator) -> tuple[int, int]:
    """A random crop showing enough of the target; else the one centred on it (a small object)."""
    rows, cols = first.shape[0] - crop + 1, first.shape[1] - crop + 1
    for _ in range(CROP_TRIES):
        top = int(torch.randint(rows, (), generator=generator))
        left = int(torch.randint(cols, (), generator=generator))
        if (first[top : top + crop, left : left + crop] == 1).sum() >= MIN_TARGET_PIXELS:
            return top, left
    ys, xs = np.nonzero(first == 1)
    if len(ys) == 0:  # the target vanished when the clip was scaled down: keep the last random crop
        return top, left
    top = int(np.clip(round(ys.mean()) - crop // 2, 0, rows - 1))
    left = int(np.clip(round(xs.mean()) - crop // 2, 0, cols - 1))
    return top, left


def clip_batch(mix: ClipMix, params: dict, iteration: int, max_gap: int) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The batch of one iteration: ((frames (B, T, 3, C, C) float 0..255, first masks (B, 1, C, C)),
    targets of frames 1.. (B, T-1, C, C) long, 255 ignored)."""
    generator = iteration_generator(params["seed"], iteration)
    clips = [target_clip(mix, params, max_gap, generator) for _ in range(params["batch_size"])]
    frames = torch.from_numpy(np.stack([c[0] for c in clips])).permute(0, 1, 4, 2, 3).float()
    targets = torch.from_numpy(np.stack([c[1] for c in clips])).long()
    first = (targets[:, :1] == 1).float()
    return (frames, first), targets[:, 1:]
