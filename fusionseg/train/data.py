"""Training samples: image/mask pairs from annotated sequences, flow images, and bootstrap shards.

A sample source is indexable and returns (image uint8 (H, W, 3), mask uint8 (H, W) in {0, 1}).
Batches are drawn with a generator seeded from (seed, iteration) only, so the data an iteration sees
does not depend on how the run got there: a resumed run sees exactly what an uninterrupted one saw.
That also lets DataLoader workers prepare the next iterations' batches ahead (`PrefetchedBatches`)
without changing any of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol, Sequence as SequenceType

import cv2
import numpy as np
import torch
from tqdm import tqdm

from fusionseg.datasets.layout import Sequence, frame_name
from fusionseg.errors import FusionSegError, InputError
from fusionseg.io import read_image

IGNORE = 255
Pair = tuple[np.ndarray, np.ndarray]


class SampleSource(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Pair: ...


class AnnotatedFrames:
    """The annotated frames of DAVIS-layout sequences (RGB, or flow images when `flow_rgb_dirs` is given).

    Small enough for the annotated training sets this stage sees, so images are decoded once and kept.
    """

    def __init__(self, frames_dirs: SequenceType[str | Path], flow_rgb_dirs: SequenceType[str | Path] | None = None):
        self.pairs: list[Pair] = []
        inputs = flow_rgb_dirs if flow_rgb_dirs is not None else [None] * len(frames_dirs)
        for frames_dir, flow_dir in zip(frames_dirs, inputs):
            self.pairs.extend(_annotated_pairs(Sequence.from_frames_dir(frames_dir), flow_dir))
        if not self.pairs:
            raise InputError(f"{', '.join(map(str, frames_dirs))}: no annotated frames to train on")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Pair:
        return self.pairs[index]


class ShardSamples:
    """The bootstrap's pseudo-labelled flow images, read through `fusionseg.shards.ShardDataset`."""

    def __init__(self, manifest: str | Path):
        from fusionseg.shards import ShardDataset

        self.dataset = ShardDataset(manifest)
        if len(self.dataset) == 0:
            raise InputError(f"{manifest}: the manifest lists no samples")
        # Checked here once, so that loader workers (which get a copy of this record) do not hash
        # every shard again; training reads all of them anyway.
        self.dataset.verify_all()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Pair:
        sample = self.dataset[index]
        return sample["image"], sample["mask"]


class ConcatSources:
    """Several sources as one index space (stream, SegFlow segmentation and flow samples alike); empty
    sources are allowed, but not all empty: an InputError says there is no `what`."""

    def __init__(self, sources: SequenceType[SampleSource], what: str = "training data"):
        self.sources = [s for s in sources if len(s)]
        if not self.sources:
            raise InputError(f"no {what} given")
        self.offsets = np.cumsum([0] + [len(s) for s in self.sources])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> Pair:
        which = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.sources[which][index - int(self.offsets[which])]


def iteration_generator(seed: int, iteration: int) -> torch.Generator:
    """A generator that depends only on (seed, iteration)."""
    return torch.Generator().manual_seed((seed << 32) + iteration)


def sample_batch(source: SampleSource, params: dict, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (B, 3, C, C) float 0..255 and targets (B, C, C) long (255 = ignore) for one iteration."""
    generator = iteration_generator(params["seed"], iteration)
    indices = torch.randint(len(source), (params["batch_size"],), generator=generator).tolist()
    crops = [augment(*source[i], params, generator) for i in indices]
    images = torch.from_numpy(np.stack([c[0] for c in crops])).permute(0, 3, 1, 2).float()
    targets = torch.from_numpy(np.stack([c[1] for c in crops])).long()
    return images, targets


class StreamBatches:
    """`batch(iteration)` -> ((images,), targets) of a stream's training: picklable, for DataLoader workers."""

    def __init__(self, source: SampleSource, params: dict):
        self.source = source
        self.params = params

    def __call__(self, iteration: int) -> tuple[tuple[torch.Tensor], torch.Tensor]:
        images, targets = sample_batch(self.source, self.params, iteration)
        return (images,), targets


Batch = tuple[tuple[torch.Tensor, ...], torch.Tensor]


class PrefetchedBatches:
    """`next_batch(iteration)` for `Trainer.fit`, computed ahead by DataLoader worker processes.

    `batch_fn(iteration)` must depend on nothing but the iteration (as `StreamBatches` does) and be
    picklable (workers are forked, or spawned where fork is unavailable). Workers compute iterations
    in order from the first one asked for, `workers * 2` ahead of the training; asking for another
    iteration than the next starts over from there. With `workers=0` each batch is computed on demand
    in this process. Use it as a context manager, so that the workers stop with the training.
    """

    def __init__(self, batch_fn: Callable[[int], Batch], iterations: int, workers: int, pin_memory: bool = False):
        self.batch_fn = batch_fn
        self.iterations = iterations
        self.workers = workers
        self.pin_memory = pin_memory
        self._batches = None
        self._next = None

    def __call__(self, iteration: int) -> Batch:
        if self.workers == 0:
            return self.batch_fn(iteration)
        if iteration != self._next:
            self._batches = iter(self._loader(iteration))
        batch = next(self._batches)
        self._next = iteration + 1
        if isinstance(batch, _Failure):
            raise batch.error
        return batch

    def __enter__(self) -> "PrefetchedBatches":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (dropping the loader's iterator shuts them down)."""
        self._batches = None
        self._next = None

    def _loader(self, start: int) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            _IterationBatches(self.batch_fn),
            batch_size=None,
            sampler=range(start, self.iterations),
            num_workers=self.workers,
            collate_fn=_unchanged,
            pin_memory=self.pin_memory,
        )


class _Failure:
    """A user-facing error raised in a worker, carried to the training process to be raised there as is
    (the DataLoader would re-raise it wrapped in the worker's traceback)."""

    def __init__(self, error: FusionSegError):
        self.error = error


class _IterationBatches(torch.utils.data.Dataset):
    def __init__(self, batch_fn: Callable[[int], Batch]):
        self.batch_fn = batch_fn

    def __getitem__(self, iteration: int) -> Batch | _Failure:
        try:
            return self.batch_fn(iteration)
        except FusionSegError as exc:
            return _Failure(exc)


def _unchanged(batch):
    return batch


def augment(image: np.ndarray, mask: np.ndarray, params: dict, generator: torch.Generator) -> Pair:
    """Random scale, pad (ignored label) to the crop size, random crop, random horizontal flip; with
    `resized_crops`, a random window resized to the crop size instead of the first three."""
    if params.get("resized_crops"):
        image, mask = _resized_crop(image, mask, params, generator)
    else:
        image, mask = _scaled_crop(image, mask, params, generator)
    flip = bool(torch.rand((), generator=generator) < 0.5)
    if params["hflip"] and flip:
        image, mask = image[:, ::-1], mask[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def _resized_crop(image: np.ndarray, mask: np.ndarray, params: dict, generator: torch.Generator) -> Pair:
    """A window whose sides are each a random share (scale_range, at most 1) of the frame's, at a random
    place, resized to crop_size x crop_size: the whole frame's content at the network's input size."""
    low, high = (min(s, 1.0) for s in params["scale_range"])
    height, width = mask.shape
    shares = low + (high - low) * torch.rand(2, generator=generator)
    win_h, win_w = max(1, round(height * float(shares[0]))), max(1, round(width * float(shares[1])))
    top = int(torch.randint(height - win_h + 1, (), generator=generator))
    left = int(torch.randint(width - win_w + 1, (), generator=generator))
    size = (params["crop_size"], params["crop_size"])
    image = cv2.resize(image[top : top + win_h, left : left + win_w], size, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask[top : top + win_h, left : left + win_w].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    return image, mask


def _scaled_crop(image: np.ndarray, mask: np.ndarray, params: dict, generator: torch.Generator) -> Pair:
    low, high = params["scale_range"]
    scale = low + (high - low) * float(torch.rand((), generator=generator))
    height, width = mask.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    crop = params["crop_size"]
    image, mask = _pad_to(image, mask, crop)
    top = int(torch.randint(mask.shape[0] - crop + 1, (), generator=generator))
    left = int(torch.randint(mask.shape[1] - crop + 1, (), generator=generator))
    return image[top : top + crop, left : left + crop], mask[top : top + crop, left : left + crop]


def _pad_to(image: np.ndarray, mask: np.ndarray, crop: int) -> Pair:
    pad_y, pad_x = max(crop - mask.shape[0], 0), max(crop - mask.shape[1], 0)
    if pad_y or pad_x:
        image = np.pad(image, ((0, pad_y), (0, pad_x), (0, 0)))
        mask = np.pad(mask, ((0, pad_y), (0, pad_x)), constant_values=IGNORE)
    return image, mask


def _annotated_pairs(sequence: Sequence, flow_dir: str | Path | None) -> list[Pair]:
    """(input, mask) for each annotated frame; the input is the frame or its flow image."""
    pairs = []
    frame_count = len(sequence.frame_paths())
    for index in tqdm(sorted(sequence.mask_paths()), desc=f"load {sequence.name}", leave=False):
        if index >= frame_count:
            raise InputError(f"{sequence.masks_dir}: mask {frame_name(index)} has no frame (sequence has {frame_count})")
        mask = sequence.read_mask(index).astype(np.uint8)
        image = sequence.read_frame(index) if flow_dir is None else _read_flow_image(Path(flow_dir), index, mask.shape)
        pairs.append((image, mask))
    return pairs


def _read_flow_image(flow_dir: Path, index: int, shape: tuple[int, int]) -> np.ndarray:
    path = flow_dir / f"{frame_name(index)}.png"
    image = read_image(path)
    if image.shape[:2] != shape:
        raise InputError(f"{path}: flow image is {image.shape[1]}x{image.shape[0]} but its mask is {shape[1]}x{shape[0]}")
    return image
