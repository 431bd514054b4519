"""`ShardDataset`: random access to the samples of a shard manifest, for PyTorch DataLoaders.

HDF5 handles must not cross a fork, so handles are kept per process id: a DataLoader worker opens its
own on first use. Each shard's SHA-256 is checked once before it is first read; the record of checked
shards travels with the Dataset into workers (fork or pickle), so calling `verify_all()` in the parent
before starting workers spares every worker from hashing the shards again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import h5py
from torch.utils.data import Dataset

from fusionseg.errors import InputError
from fusionseg.io import read_hdf5
from fusionseg.shards.verify import check_checksum, check_contents, open_shard, read_manifest
from fusionseg.shards.writer import sample_key

Transform = Callable[[dict[str, Any]], Any]


class ShardDataset(Dataset):
    """Samples listed in `manifest_path`: dicts with image (flow RGB), mask, dataset, sequence, frame.

    `ds[i]` returns {"image": uint8 (H, W, 3), "mask": uint8 (H, W) in {0, 1}, "dataset": str,
    "sequence": str, "frame": int} plus "rgb" (uint8 (H, W, 3)) when `with_rgb`; `transform` is
    applied to that dict last. Shards not checked by `verify_all()` beforehand are checked by each
    worker that reads them (once per worker; `persistent_workers=True` keeps that once per run).
    """

    def __init__(self, manifest_path: str | os.PathLike, transform: Transform | None = None, with_rgb: bool = False):
        self.manifest_path = Path(manifest_path)
        self.table = read_manifest(self.manifest_path)
        self.transform = transform
        self.with_rgb = with_rgb
        if with_rgb and not self.table["has_rgb"].astype(bool).all():
            raise InputError(f"{self.manifest_path}: with_rgb asked for, but the shards were written without RGB")
        self._shard_sizes = self.table.groupby("shard")["shard_samples"].first().to_dict()
        self._shard_sha = self.table.groupby("shard")["shard_sha256"].first().to_dict()
        self._rows = self.table[["shard", "position", "dataset", "sequence", "frame"]].to_dict("records")
        self._handles: dict[int, dict[str, h5py.File]] = {}
        self._verified: set[str] = set()

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self._rows):
            raise IndexError(f"sample {index} out of range (dataset has {len(self._rows)})")
        row = self._rows[index]
        group = self._handle(row["shard"])[sample_key(int(row["position"]))]
        shard = self.manifest_path.parent / row["shard"]

        def read(name: str) -> Any:
            return read_hdf5(group[name], (), shard, f"sample {int(row['position'])} ({name})")

        sample: dict[str, Any] = {
            "image": read("flow"),
            "mask": read("mask"),
            "dataset": row["dataset"],
            "sequence": row["sequence"],
            "frame": int(row["frame"]),
        }
        if self.with_rgb:
            sample["rgb"] = read("rgb")
        return self.transform(sample) if self.transform is not None else sample

    def __getstate__(self) -> dict:
        # Open HDF5 handles cannot be pickled (spawned workers); each process opens its own.
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def verify_all(self) -> None:
        """Check the SHA-256 of every shard not checked yet (an InputError names a corrupt one)."""
        for shard_rel in self._shard_sha:
            self._verify(shard_rel)

    def close(self) -> None:
        """Close the handles this process opened."""
        for handle in self._handles.pop(os.getpid(), {}).values():
            handle.close()

    def _handle(self, shard_rel: str) -> h5py.File:
        handles = self._handles.setdefault(os.getpid(), {})
        if shard_rel not in handles:
            self._verify(shard_rel)
            shard = self.manifest_path.parent / shard_rel
            handle = open_shard(shard)
            check_contents(handle, shard, int(self._shard_sizes[shard_rel]))
            handles[shard_rel] = handle
        return handles[shard_rel]

    def _verify(self, shard_rel: str) -> None:
        if shard_rel not in self._verified:
            check_checksum(self.manifest_path.parent / shard_rel, self._shard_sha[shard_rel])
            self._verified.add(shard_rel)
