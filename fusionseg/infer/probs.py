"""The probability files every stream writes (docs/architecture.md):

    probs/<method>/<dataset>/<seq>.h5: dataset `prob`, float16 (N, H, W) foreground probability in
    [0, 1], one chunk per frame; attrs `method` and `model_sha256`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import h5py
import numpy as np

from fusionseg.errors import InputError
from fusionseg.io import atomic_file, open_hdf5

DATASET = "prob"


def write_probs(
    path: str | Path, batches: Iterable[np.ndarray], frames: int, size: tuple[int, int], method: str, model_sha256: str
) -> None:
    """Write `frames` probabilities of `size` (H, W), arriving in batches of (B, H, W), atomically."""
    path = Path(path)
    with atomic_file(path) as tmp, h5py.File(tmp, "w") as handle:
        data = handle.create_dataset(DATASET, shape=(frames, *size), dtype=np.float16, chunks=(1, *size))
        handle.attrs["method"] = method
        handle.attrs["model_sha256"] = model_sha256
        written = 0
        for batch in batches:
            data[written : written + len(batch)] = np.clip(batch, 0, 1).astype(np.float16)
            written += len(batch)
        if written != frames:
            raise InputError(f"{path}: got {written} frame(s) of probabilities, expected {frames}")


def read_probs(path: str | Path) -> np.ndarray:
    """All probabilities of a file as float32 (N, H, W)."""
    with _open(path) as handle:
        return handle[DATASET][()].astype(np.float32)


def read_probs_attrs(path: str | Path) -> dict[str, str]:
    with _open(path) as handle:
        return {key: str(value) for key, value in handle.attrs.items()}


def _open(path: str | Path) -> h5py.File:
    handle = open_hdf5(path, "probability file")
    if DATASET not in handle or handle[DATASET].ndim != 3:
        handle.close()
        raise InputError(f"{path}: no (N, H, W) dataset '{DATASET}' (not a probability file)")
    return handle
