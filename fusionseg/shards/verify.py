"""Checking shards against their manifest: checksum, sample count and layout, and (verify-shards) every
array's Fletcher-32 checksums."""

from __future__ import annotations

from pathlib import Path

import h5py
import pandas as pd

from fusionseg.errors import InputError
from fusionseg.io import file_sha256, open_hdf5, read_hdf5
from fusionseg.shards.writer import MANIFEST_COLUMNS, SHARD_FORMAT

REQUIRED_COLUMNS = [c for c in MANIFEST_COLUMNS if c != "sample"]


def read_manifest(path: Path) -> pd.DataFrame:
    """The manifest table; an error naming the file when it is missing or lacks columns."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: manifest not found")
    try:
        table = pd.read_csv(path, dtype={"dataset": str, "sequence": str, "shard_sha256": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable manifest ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: manifest lacks column(s) {', '.join(missing)}")
    return table


def check_checksum(shard: Path, expected_sha256: str) -> None:
    """An InputError naming the shard when it is missing or its SHA-256 differs from the manifest."""
    if not shard.is_file():
        raise InputError(f"{shard}: shard listed in the manifest not found")
    actual = file_sha256(shard)
    if actual != expected_sha256:
        raise InputError(
            f"{shard}: checksum mismatch (corrupt or truncated shard): sha256 {actual}, manifest says {expected_sha256}"
        )


def check_contents(handle: h5py.File, shard: Path, expected_samples: int) -> None:
    """An InputError naming the shard when its format or sample count is not what the manifest says."""
    if handle.attrs.get("format") != SHARD_FORMAT:
        raise InputError(f"{shard}: not a fusionseg shard (format attribute {handle.attrs.get('format')!r})")
    stored = int(handle.attrs.get("samples", -1))
    present = len(handle["samples"]) if "samples" in handle else 0
    if not stored == present == expected_samples:
        raise InputError(
            f"{shard}: holds {present} samples (attribute says {stored}), manifest lists {expected_samples}"
        )


def check_arrays(handle: h5py.File, shard: Path) -> None:
    """Read every array of every sample, so that a chunk failing its checksum is named now."""
    for key, group in handle["samples"].items():
        for name, array in group.items():
            read_hdf5(array, (), shard, f"sample {key} ({name})")


def open_shard(shard: Path) -> h5py.File:
    return open_hdf5(shard, "shard")


def verify_manifest(manifest_path: Path) -> pd.DataFrame:
    """Check every shard of a manifest; return one row per shard (shard, samples, sha256)."""
    manifest_path = Path(manifest_path)
    table = read_manifest(manifest_path)
    summary = []
    for shard_rel, rows in table.groupby("shard", sort=True):
        shard = manifest_path.parent / shard_rel
        expected = rows["shard_sha256"].iloc[0]
        check_checksum(shard, expected)
        if sorted(rows["position"]) != list(range(len(rows))) or rows["shard_samples"].iloc[0] != len(rows):
            raise InputError(f"{manifest_path}: rows for {shard_rel} do not list positions 0..{len(rows) - 1}")
        with open_shard(shard) as handle:
            check_contents(handle, shard, len(rows))
            check_arrays(handle, shard)
        summary.append({"shard": shard_rel, "samples": len(rows), "sha256": expected})
    return pd.DataFrame(summary, columns=["shard", "samples", "sha256"])
