"""The probability files every method writes (docs/architecture.md):

    probs/<method>/<dataset>/<seq>.h5: dataset `prob`, float16, one chunk per frame, either
      (N, H, W)     foreground probability in [0, 1] (one object, or all objects merged), or
      (N, K, H, W)  one probability per object (attr `object_ids`: JSON list of the K mask ids);
                    the background is 1 - their sum (methods aggregate objects softly, STM-style);
    attrs `method`, `model_sha256`, and whatever provenance the method adds.

Probabilities are stored at the resolution the network saw; `fusionseg masks` resizes them to the
source frames' size before thresholding (the official protocol scores at the native resolution).
Datasets carry a Fletcher-32 checksum per chunk, which h5py verifies on every read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np

from fusionseg.errors import InputError
from fusionseg.io import hdf5_output, open_hdf5, read_hdf5

DATASET = "prob"


def write_probs(
    path: str | Path,
    batches: Iterable[np.ndarray],
    frames: int,
    size: tuple[int, int],
    method: str,
    model_sha256: str,
    object_ids: list[int] | None = None,
    attrs: dict[str, str] | None = None,
) -> None:
    """Write `frames` probability maps of `size` (H, W), arriving in batches, atomically.

    Batches are (B, H, W), or (B, K, H, W) with `object_ids` naming the K objects.
    """
    path = Path(path)
    per_frame = (len(object_ids), *size) if object_ids is not None else tuple(size)
    with hdf5_output(path) as handle:
        data = handle.create_dataset(
            DATASET, shape=(frames, *per_frame), dtype=np.float16, chunks=(1, *per_frame), fletcher32=True
        )
        handle.attrs["method"] = method
        handle.attrs["model_sha256"] = model_sha256
        if object_ids is not None:
            handle.attrs["object_ids"] = json.dumps([int(i) for i in object_ids])
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value
        written = 0
        for batch in batches:
            if batch.shape[1:] != per_frame:
                raise InputError(f"{path}: got probabilities of shape {batch.shape[1:]}, expected {per_frame}")
            data[written : written + len(batch)] = np.clip(batch, 0, 1).astype(np.float16)
            written += len(batch)
        if written != frames:
            raise InputError(f"{path}: got {written} frame(s) of probabilities, expected {frames}")


def read_probs(path: str | Path) -> np.ndarray:
    """All probabilities of a file as float32: (N, H, W), or (N, K, H, W) for per-object files."""
    with open_probs(path) as handle:
        return checked_probs(path, read_hdf5(handle[DATASET], (), path, "probability data").astype(np.float32))


def read_prob_frame(handle: h5py.File, path: str | Path, index: int) -> np.ndarray:
    """Frame `index` of an open probability file, checked like `read_probs`."""
    frame = read_hdf5(handle[DATASET], index, path, f"probability data (frame {index})")
    return checked_probs(path, frame.astype(np.float32), f" frame {index}")


def checked_probs(path: str | Path, probs: np.ndarray, where: str = "") -> np.ndarray:
    """`probs` when every value is a probability; else an InputError naming the file (and `where`)."""
    if np.isnan(probs).any():
        raise InputError(f"{path}:{where} probabilities hold NaN (damaged or not written by fusionseg)")
    if probs.size and (probs.min() < 0 or probs.max() > 1):
        raise InputError(
            f"{path}:{where} probabilities outside [0, 1] (min {probs.min():g}, max {probs.max():g}; not probabilities?)"
        )
    return probs


def read_object_ids(path: str | Path) -> list[int] | None:
    """The object ids of a per-object probability file; None for a single-foreground file."""
    with open_probs(path) as handle:
        text = handle.attrs.get("object_ids")
    return None if text is None else [int(i) for i in json.loads(text)]


def read_probs_attrs(path: str | Path) -> dict[str, str]:
    with open_probs(path) as handle:
        return {key: str(value) for key, value in handle.attrs.items()}


def probs_shape(path: str | Path) -> tuple[int, ...]:
    """(N, H, W) or (N, K, H, W) of a probability file (nothing read but its header)."""
    with open_probs(path) as handle:
        return handle[DATASET].shape


def open_probs(path: str | Path) -> h5py.File:
    """A probability file open for reading; an InputError naming it when it is not one."""
    handle = open_hdf5(path, "probability file")
    if DATASET not in handle or handle[DATASET].ndim not in (3, 4):
        handle.close()
        raise InputError(f"{path}: no (N, H, W) or (N, K, H, W) dataset '{DATASET}' (not a probability file)")
    return handle
