"""Writing samples into HDF5 shards of a fixed size, each renamed into place only when complete."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np
import pandas as pd

from fusionseg.io import atomic_file, file_sha256, hdf5_output

SHARD_FORMAT = "fusionseg-shard-1"
COMPRESSIONS = ("none", "lzf", "gzip")
MANIFEST_COLUMNS = [
    "sample", "shard", "position", "dataset", "sequence", "frame", "height", "width",
    "boxes", "model_sha256", "has_rgb", "shard_sha256", "shard_samples",
]


@dataclass(frozen=True)
class Sample:
    """One training sample and where it came from."""

    flow: np.ndarray
    mask: np.ndarray
    dataset: str
    sequence: str
    frame: int
    boxes: list[tuple[int, int, int, int]]
    model_sha256: str
    rgb: np.ndarray | None = None


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


def sample_key(position: int) -> str:
    return f"samples/{position:06d}"


class ShardWriter:
    """Context manager that appends samples to `folder/shard-*.h5`, `shard_size` per shard.

    A shard is written under a temporary name and renamed when it is full (or at the end), so a
    failure leaves no file under a final shard name for the shard being written. Every array is one
    chunk with a Fletcher-32 checksum, checked on every read. `rows` holds the manifest rows of the
    completed shards (shard paths relative to `folder`).
    """

    def __init__(self, folder: Path, shard_size: int, compression: str = "none") -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, not {compression!r}")
        self.folder = Path(folder)
        self.shard_size = shard_size
        self.compression = None if compression == "none" else compression
        self.rows: list[dict] = []
        self._pending: list[dict] = []
        self._stack: contextlib.ExitStack | None = None
        self._file: h5py.File | None = None
        self._shards = 0

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self._finish_shard()
        else:
            self._abandon_shard(exc_type, exc, tb)

    def add(self, sample: Sample) -> None:
        """Append one sample, starting a new shard when the current one is full."""
        _check_sample(sample)
        if self._file is None:
            self._start_shard()
        position = len(self._pending)
        self._write_sample(self._file, position, sample)
        self._pending.append(_provenance_row(sample, shard_name(self._shards), position))
        if len(self._pending) == self.shard_size:
            self._finish_shard()

    def _start_shard(self) -> None:
        self._stack = contextlib.ExitStack()
        self._file = self._stack.enter_context(hdf5_output(self.folder / shard_name(self._shards)))
        self._file.attrs["format"] = SHARD_FORMAT
        self._file.attrs["compression"] = self.compression or "none"

    def _write_sample(self, handle: h5py.File, position: int, sample: Sample) -> None:
        group = handle.create_group(sample_key(position))
        arrays = {"flow": sample.flow, "mask": (sample.mask > 0).astype(np.uint8)}
        if sample.rgb is not None:
            arrays["rgb"] = sample.rgb
        for name, array in arrays.items():
            # One chunk per array, so a random read decompresses exactly one sample.
            group.create_dataset(name, data=array, chunks=array.shape, compression=self.compression, fletcher32=True)
        group.attrs.update(
            dataset=sample.dataset, sequence=sample.sequence, frame=sample.frame,
            boxes=_boxes_json(sample.boxes), model_sha256=sample.model_sha256,
        )

    def _finish_shard(self) -> None:
        if self._file is None:
            return
        self._file.attrs["samples"] = len(self._pending)
        self._stack.close()  # closes the file and renames it onto the final shard name
        checksum = file_sha256(self.folder / shard_name(self._shards))
        for row in self._pending:
            row.update(shard_sha256=checksum, shard_samples=len(self._pending))
        self.rows.extend(self._pending)
        self._reset()
        self._shards += 1

    def _abandon_shard(self, exc_type: type, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._file is None:
            return
        self._stack.__exit__(exc_type, exc, tb)  # closes and deletes the temporary file, renames nothing
        self._reset()

    def _reset(self) -> None:
        self._file = self._stack = None
        self._pending = []


def write_manifest(rows: list[dict], path: Path, shard_prefix: str = "") -> pd.DataFrame:
    """Write the manifest atomically; `shard_prefix` is the shards' folder relative to the manifest."""
    table = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    table["sample"] = np.arange(len(table))
    table["shard"] = shard_prefix + table["shard"].astype(str)
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False)
    return table


def _provenance_row(sample: Sample, shard: str, position: int) -> dict:
    height, width = sample.mask.shape
    return {
        "shard": shard, "position": position, "dataset": sample.dataset, "sequence": sample.sequence,
        "frame": int(sample.frame), "height": height, "width": width,
        "boxes": _boxes_json(sample.boxes),
        "model_sha256": sample.model_sha256, "has_rgb": sample.rgb is not None,
    }


def _boxes_json(boxes: list[tuple[int, int, int, int]]) -> str:
    return json.dumps([[int(v) for v in box] for box in boxes])


def _check_sample(sample: Sample) -> None:
    height, width = sample.mask.shape
    images = {"flow": sample.flow} if sample.rgb is None else {"flow": sample.flow, "rgb": sample.rgb}
    for name, image in images.items():
        if image.dtype != np.uint8 or image.shape != (height, width, 3):
            raise ValueError(f"{name} must be uint8 ({height}, {width}, 3) like the mask, got {image.dtype} {image.shape}")
