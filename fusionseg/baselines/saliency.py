"""The Saliency baseline: U²-Netp (DUTS) on each frame, exactly as the rembg background remover runs it.

rembg resizes the RGB frame to 320x320 (PIL Lanczos), divides it by its maximum, normalises it with
ImageNet's mean and std, takes the fused sigmoid output, stretches it to 0..1 by its own minimum and
maximum, stores it as 8 bits and resizes it back with Lanczos. No motion and no training: what a user
gets from a per-frame background remover, and the floor every learned method here must beat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence as SequenceType

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from fusionseg.devices import resolve_device
from fusionseg.infer.probs import write_probs
from fusionseg.io import file_sha256, read_image
from fusionseg.models.u2net import IMAGENET_MEAN, IMAGENET_STD, INPUT_SIZE, U2NetP, load_u2netp, shipped_weights

METHOD = "saliency"


def network_input(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, 320, 320) float32, as rembg prepares it."""
    resized = np.asarray(Image.fromarray(rgb).resize((INPUT_SIZE, INPUT_SIZE), Image.LANCZOS), dtype=np.float64)
    scaled = resized / max(float(resized.max()), 1.0)
    normalised = (scaled - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    return normalised.transpose(2, 0, 1).astype(np.float32)


def saliency_map(logit: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A fused logit map (320, 320) -> saliency in [0, 1] at `size` (H, W): min-max stretched, 8 bits,
    Lanczos-resized, as rembg's mask."""
    sal = 1 / (1 + np.exp(-logit.astype(np.float64)))
    low, high = sal.min(), sal.max()
    stretched = (sal - low) / (high - low) if high > low else np.zeros_like(sal)
    mask = Image.fromarray((stretched * 255).astype(np.uint8), mode="L").resize((size[1], size[0]), Image.LANCZOS)
    return np.asarray(mask, dtype=np.float32) / 255


def _batches(model: U2NetP, images: SequenceType[Path], batch_size: int, device: torch.device) -> Iterator[np.ndarray]:
    for start in tqdm(range(0, len(images), batch_size), desc=f"saliency {Path(images[0]).parent.name}"):
        frames = [read_image(p) for p in images[start : start + batch_size]]
        batch = torch.from_numpy(np.stack([network_input(f) for f in frames])).to(device)
        with torch.inference_mode():
            fused = model(batch.contiguous(memory_format=torch.channels_last))[0][:, 0].float().cpu().numpy()
        yield np.stack([saliency_map(logit, frame.shape[:2]) for logit, frame in zip(fused, frames)])


def write_saliency(images: SequenceType[Path], out: str | Path, batch_size: int = 4, device: str = "auto") -> None:
    """Saliency probabilities of every image (all the size of the first), written as a probability file."""
    target = resolve_device(device)
    model = load_u2netp("duts").eval().to(target, memory_format=torch.channels_last)
    height, width = read_image(images[0]).shape[:2]
    write_probs(out, _batches(model, images, batch_size, target), len(images), (height, width), METHOD, file_sha256(shipped_weights()))
