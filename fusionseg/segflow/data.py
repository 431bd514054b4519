"""SegFlow's training data: frame pairs with a mask (segmentation) or with ground-truth flow.

- `AnnotatedPairs`: each annotated frame of DAVIS-layout sequences with its partner frame (the next
  one; the last frame's previous one, the pipeline's flow convention), and its mask.
- `FlowClips`: consecutive frames of sequences with exact flow in `<root>/Flow/<seq>/` (written by
  `fusionseg synth`: N flows for N frames, forward i -> i+1, the last frame i -> i-1).
- `FlowPairFolders`: real ground-truth pairs in FlyingChairs naming (NAME-img0.*, NAME-img1.*,
  NAME-gt.flo) in one or more folders.

Files are decoded when a sample is drawn (a few per iteration), so no dataset is held in memory.
`JointBatches` draws each iteration's batch from a generator seeded by (seed, iteration) alone, like
fusionseg.train.data, so a resumed run sees exactly the batches an uninterrupted one saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence as SequenceType

import cv2
import numpy as np
import torch

from fusionseg.datasets.layout import Sequence, frame_name
from fusionseg.errors import InputError
from fusionseg.io.flo import UNKNOWN_FLOW_THRESHOLD, read_flo
from fusionseg.flow.sequence import frame_pairs
from fusionseg.io import read_image, read_mask
from fusionseg.train.data import augment, iteration_generator

SegSample = tuple[np.ndarray, np.ndarray, np.ndarray]  # frame t, frame t+1 (uint8 RGB), mask uint8 {0, 1}
FlowSample = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # frame t, frame t+1, flow (H, W, 2), valid (H, W)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm")


class Indexable(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int): ...


def _check_size(path: Path, array: np.ndarray, reference: Path, shape: tuple[int, int]) -> None:
    if array.shape[:2] != shape:
        raise InputError(
            f"{path}: is {array.shape[1]}x{array.shape[0]} but {reference.name} is {shape[1]}x{shape[0]}"
        )


def read_pair(first: Path, second: Path) -> tuple[np.ndarray, np.ndarray]:
    """Two frames of the same size as RGB uint8."""
    frame0, frame1 = read_image(first), read_image(second)
    _check_size(second, frame1, first, frame0.shape[:2])
    return frame0, frame1


class AnnotatedPairs:
    """Annotated frames with their partner frame and mask (the segmentation batches' samples)."""

    def __init__(self, frames_dirs: SequenceType[str | Path]):
        self.items: list[tuple[Path, Path, Path]] = []
        for frames_dir in frames_dirs:
            sequence = Sequence.from_frames_dir(frames_dir)
            frames = sequence.frame_paths()
            if len(frames) < 2:
                raise InputError(f"{sequence.frames_dir}: only 1 frame; SegFlow needs frame pairs")
            partners = dict(frame_pairs(len(frames)))
            for index, mask in sorted(sequence.mask_paths().items()):
                if index >= len(frames):
                    raise InputError(f"{mask}: mask {frame_name(index)} has no frame (sequence has {len(frames)})")
                self.items.append((frames[index], frames[partners[index]], mask))
        if not self.items:
            raise InputError(f"{', '.join(map(str, frames_dirs))}: no annotated frames to train on")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> SegSample:
        first, second, mask_path = self.items[index]
        frame0, frame1 = read_pair(first, second)
        mask = read_mask(mask_path)
        _check_size(mask_path, mask, first, frame0.shape[:2])
        return frame0, frame1, mask.astype(np.uint8)


class FlowClips:
    """Consecutive frame pairs of sequences with ground-truth flow in <root>/Flow/<seq>/."""

    def __init__(self, frames_dirs: SequenceType[str | Path]):
        self.items: list[tuple[Path, Path, Path]] = []
        for frames_dir in frames_dirs:
            sequence = Sequence.from_frames_dir(frames_dir)
            frames = sequence.frame_paths()
            flows = [sequence.flow_dir / f"{frame_name(i)}.flo" for i in range(len(frames))]
            missing = [f for f in flows if not f.is_file()]
            if len(frames) < 2 or missing:
                raise InputError(
                    f"{sequence.flow_dir}: {len(missing)} of the {len(frames)} ground-truth flow files missing "
                    f"(first: {missing[0].name if missing else '-'}); expected N flows for N >= 2 frames, as "
                    "`fusionseg synth` writes"
                )
            for (source, target), flow in zip(frame_pairs(len(frames)), flows):
                self.items.append((frames[source], frames[target], flow))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> FlowSample:
        return _flow_sample(*self.items[index])


class FlowPairFolders:
    """Real ground-truth pairs named like FlyingChairs: NAME-img0.EXT, NAME-img1.EXT, NAME-gt.flo."""

    def __init__(self, folders: SequenceType[str | Path]):
        self.items: list[tuple[Path, Path, Path]] = []
        for folder in map(Path, folders):
            if not folder.is_dir():
                raise InputError(f"{folder}: flow-pair folder not found")
            found = sorted(folder.glob("*-gt.flo"))
            if not found:
                raise InputError(f"{folder}: no NAME-gt.flo ground-truth files (FlyingChairs naming expected)")
            self.items.extend(_named_pair(flow) for flow in found)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> FlowSample:
        return _flow_sample(*self.items[index])


def _named_pair(flow: Path) -> tuple[Path, Path, Path]:
    name = flow.name.removesuffix("-gt.flo")
    images = []
    for tag in ("img0", "img1"):
        matches = [p for p in sorted(flow.parent.glob(f"{name}-{tag}.*")) if p.suffix.lower() in IMAGE_SUFFIXES]
        if not matches:
            raise InputError(f"{flow}: no image {name}-{tag}.* beside it")
        images.append(matches[0])
    return images[0], images[1], flow


def _flow_sample(first: Path, second: Path, flow_path: Path) -> FlowSample:
    frame0, frame1 = read_pair(first, second)
    flow = read_flo(flow_path)
    _check_size(flow_path, flow, first, frame0.shape[:2])
    valid = (np.abs(flow) < UNKNOWN_FLOW_THRESHOLD).all(axis=2)
    return frame0, frame1, np.where(valid[..., None], flow, 0).astype(np.float32), valid


def augment_flow(sample: FlowSample, params: dict, generator: torch.Generator) -> FlowSample:
    """Random scale (flow vectors scale with the image), pad (invalid) to the crop size, random crop,
    random horizontal flip (u changes sign). Draws from `generator` in the same order as `augment`."""
    frame0, frame1, flow, valid = sample
    low, high = params["scale_range"]
    scale = low + (high - low) * float(torch.rand((), generator=generator))
    height, width = valid.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    frames = cv2.resize(np.concatenate([frame0, frame1], axis=2), size, interpolation=cv2.INTER_LINEAR)
    flow = cv2.resize(flow, size, interpolation=cv2.INTER_LINEAR) * np.float32([size[0] / width, size[1] / height])
    valid = cv2.resize(valid.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    crop = params["crop_size"]
    pad = ((0, max(crop - size[1], 0)), (0, max(crop - size[0], 0)))
    frames, flow = np.pad(frames, (*pad, (0, 0))), np.pad(flow, (*pad, (0, 0)))
    valid = np.pad(valid, pad)
    top = int(torch.randint(valid.shape[0] - crop + 1, (), generator=generator))
    left = int(torch.randint(valid.shape[1] - crop + 1, (), generator=generator))
    window = (slice(top, top + crop), slice(left, left + crop))
    frames, flow, valid = frames[window], flow[window], valid[window]
    flip = bool(torch.rand((), generator=generator) < 0.5)
    if params["hflip"] and flip:
        frames, flow, valid = frames[:, ::-1], flow[:, ::-1] * np.float32([-1, 1]), valid[:, ::-1]
    frames = np.ascontiguousarray(frames)
    return frames[..., :3], frames[..., 3:], np.ascontiguousarray(flow), np.ascontiguousarray(valid).astype(bool)


def _frames_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()


class JointBatches:
    """Iteration -> ((frame t, frame t+1, target), target): a segmentation batch (target (B, C, C) long,
    255 = ignore) or a flow batch (target (B, 3, C, C): u, v, valid), as the alternation schedule says."""

    def __init__(self, segmentation: Indexable, flow: Indexable, params: dict):
        self.segmentation, self.flow, self.params = segmentation, flow, params

    def task(self, iteration: int) -> str:
        cycle = self.params["seg_steps"] + self.params["flow_steps"]
        return "seg" if iteration % cycle < self.params["seg_steps"] else "flow"

    def __call__(self, iteration: int) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        generator = iteration_generator(self.params["seed"], iteration)
        if self.task(iteration) == "seg":
            return segmentation_batch(self.segmentation, self.params["seg_batch_size"], self.params, generator)
        return flow_batch(self.flow, self.params["flow_batch_size"], self.params, generator)


def segmentation_batch(
    source: Indexable, batch_size: int, params: dict, generator: torch.Generator
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """Both frames get the same scale, crop and flip: they are augmented as one 6-channel image."""
    picks = torch.randint(len(source), (batch_size,), generator=generator).tolist()
    crops = []
    for index in picks:
        frame0, frame1, mask = source[index]
        crops.append(augment(np.concatenate([frame0, frame1], axis=2), mask, params, generator))
    frame0 = _frames_tensor([c[0][..., :3] for c in crops])
    frame1 = _frames_tensor([c[0][..., 3:] for c in crops])
    target = torch.from_numpy(np.stack([c[1] for c in crops])).long()
    return (frame0, frame1, target), target


def flow_batch(
    source: Indexable, batch_size: int, params: dict, generator: torch.Generator
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    picks = torch.randint(len(source), (batch_size,), generator=generator).tolist()
    crops = [augment_flow(source[index], params, generator) for index in picks]
    frame0 = _frames_tensor([c[0] for c in crops])
    frame1 = _frames_tensor([c[1] for c in crops])
    flow = torch.from_numpy(np.stack([c[2] for c in crops])).permute(0, 3, 1, 2)
    valid = torch.from_numpy(np.stack([c[3] for c in crops])).unsqueeze(1).float()
    target = torch.cat([flow, valid], dim=1)
    return (frame0, frame1, target), target
