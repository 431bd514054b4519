"""Running the streams and the fusion over a sequence, batched, and thresholding probabilities to masks."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence as SequenceType

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fusionseg.errors import InputError
from fusionseg.infer.probs import read_probs, write_probs
from fusionseg.io import file_sha256, read_image
from fusionseg.models.checkpoint import load_model
from fusionseg.models.fusion import log_probabilities
from fusionseg.models.stream import foreground_probability
from fusionseg.devices import resolve_device


def infer_stream(
    model_path: str | Path, stream: str, images: SequenceType[Path], out: str | Path, batch_size: int, device: str
) -> None:
    """Foreground probabilities of a stream model on each image, written to `out` (float16 HDF5)."""
    target = resolve_device(device)
    model = load_model(model_path, "stream", stream).to(target)
    height, width = read_image(images[0]).shape[:2]
    batches = _stream_batches(model, images, (height, width), batch_size, target)
    write_probs(out, batches, len(images), (height, width), stream, file_sha256(model_path))


def _stream_batches(
    model: nn.Module, images: SequenceType[Path], size: tuple[int, int], batch_size: int, device: torch.device
) -> Iterator[np.ndarray]:
    starts = range(0, len(images), batch_size)
    with ThreadPoolExecutor(max_workers=1) as reader:
        # The next batch is decoded (OpenCV releases the GIL) while the network runs on this one.
        pending = reader.submit(_read_batch, images[:batch_size], size)
        for start in tqdm(starts, desc=f"infer {Path(images[0]).parent.name}"):
            batch = pending.result()
            if start + batch_size < len(images):
                pending = reader.submit(_read_batch, images[start + batch_size : start + 2 * batch_size], size)
            tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float().to(device)
            with torch.inference_mode(), torch.autocast(device.type, enabled=device.type == "cuda"):
                logits = model(tensor)
            yield foreground_probability(logits).cpu().numpy()


def _read_batch(paths: SequenceType[Path], size: tuple[int, int]) -> np.ndarray:
    return np.stack([_read_sized(p, size) for p in paths])


def _read_sized(path: Path, size: tuple[int, int]) -> np.ndarray:
    image = read_image(path)
    if image.shape[:2] != size:
        raise InputError(f"{path}: image is {image.shape[1]}x{image.shape[0]}, the sequence's first is {size[1]}x{size[0]}")
    return image


def infer_joint(
    model_path: str | Path, appearance: str | Path, motion: str | Path, out: str | Path, batch_size: int, device: str
) -> None:
    """The fusion model's foreground probabilities from the two streams' probability files."""
    target = resolve_device(device)
    model = load_model(model_path, "fusion").to(target)
    app, mot = read_probs(appearance), read_probs(motion)
    if app.shape != mot.shape:
        raise InputError(f"{motion}: probabilities are {mot.shape} but {appearance} has {app.shape}")

    def batches() -> Iterator[np.ndarray]:
        for start in tqdm(range(0, len(app), batch_size), desc=f"fuse {Path(out).stem}"):
            a = log_probabilities(torch.from_numpy(app[start : start + batch_size])).to(target)
            m = log_probabilities(torch.from_numpy(mot[start : start + batch_size])).to(target)
            with torch.no_grad():
                yield foreground_probability(model(a, m)).cpu().numpy()

    write_probs(out, batches(), len(app), app.shape[1:], "joint", file_sha256(model_path))
