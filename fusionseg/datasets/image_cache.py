"""The training cache of a still-image dataset (`fusionseg extract-images`) and its reader.

    DIR/manifest.csv                  one row per sample: sample, stem, image_file, mask_file (source
                                      files), height, width (as stored), shard, position, shard_sha256,
                                      shard_samples
    DIR/shards/shard-00000.h5         attrs format = "fusionseg-images-1", samples, source (JSON)
        samples/000000/image          uint8 (H, W, 3) RGB, one chunk, uncompressed
        samples/000000/mask           uint8 (H, W): 0 background, 1 object, 255 void, one chunk
        samples/000000 attrs          stem

Samples are decoded and resized once, so training reads each with one uncompressed chunk per array.
DIR is written as a whole under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
from tqdm import tqdm

from fusionseg.datasets.images import ImagePair, ImageSet, read_pair
from fusionseg.datasets.writer import target_size
from fusionseg.errors import InputError
from fusionseg.io import FormerOutput, atomic_dir, file_sha256, hdf5_output, open_hdf5
from fusionseg.shards.verify import check_checksum
from fusionseg.shards.writer import sample_key, shard_name

CACHE_FORMAT = "fusionseg-images-1"
MANIFEST = "manifest.csv"
SHARDS = "shards"
# A cache written before folder outputs carried their marker: still replaced by a new one.
FORMER_CACHE = FormerOutput(MANIFEST, (MANIFEST, SHARDS))
DEFAULT_SHARD_SIZE = 1024
MANIFEST_COLUMNS = [
    "sample", "stem", "image_file", "mask_file", "height", "width",
    "shard", "position", "shard_sha256", "shard_samples",
]  # fmt: skip
Pair = tuple[np.ndarray, np.ndarray]


def write_image_cache(
    image_set: ImageSet,
    out: str | Path,
    max_side: int | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    source: dict | None = None,
) -> pd.DataFrame:
    """Decode, check and shrink every pair (longer side <= max_side) into the cache folder `out`.

    `source` (JSON-able: layout, root, options) is recorded in every shard. Returns the manifest.
    """
    if not image_set.pairs:
        raise InputError(f"{image_set.name}: no images to write")
    source_json = json.dumps(source or {}, sort_keys=True)
    rows = []
    sources = {p.image.parent for p in image_set.pairs} | {p.mask.parent for p in image_set.pairs}
    with atomic_dir(out, "image cache", sources, FORMER_CACHE) as staging, tqdm(total=len(image_set.pairs), desc=f"cache {image_set.name}", unit="image") as bar:
        (staging / SHARDS).mkdir()
        for index, start in enumerate(range(0, len(image_set.pairs), shard_size)):
            pairs = image_set.pairs[start : start + shard_size]
            rows += _write_shard(staging / SHARDS / shard_name(index), pairs, max_side, source_json, bar)
        table = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
        table["sample"] = np.arange(len(table))
        table.to_csv(staging / MANIFEST, index=False)
    return table


def shrink(image: np.ndarray, mask: np.ndarray, max_side: int | None) -> Pair:
    """Photo (area interpolation) and mask (nearest: keeps 0 / 1 / 255) with the longer side <= max_side."""
    height, width = mask.shape
    size = target_size(width, height, max_side)
    if size == (width, height):
        return image, mask
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)


def _write_shard(path: Path, pairs: list[ImagePair], max_side: int | None, source_json: str, bar: tqdm) -> list[dict]:
    rows = []
    with hdf5_output(path) as handle:
        handle.attrs.update(format=CACHE_FORMAT, samples=len(pairs), source=source_json)
        for position, pair in enumerate(pairs):
            image, mask = shrink(*read_pair(pair), max_side)
            group = handle.create_group(sample_key(position))
            for name, array in (("image", image), ("mask", mask)):
                # One chunk per array, so a random read touches exactly one sample.
                group.create_dataset(name, data=array, chunks=array.shape)
            group.attrs["stem"] = pair.stem
            rows.append(_manifest_row(pair, mask.shape, path, position))
            bar.update()
    checksum = file_sha256(path)
    for row in rows:
        row.update(shard_sha256=checksum, shard_samples=len(rows))
    return rows


def _manifest_row(pair: ImagePair, shape: tuple[int, int], shard: Path, position: int) -> dict:
    return {
        "stem": pair.stem, "image_file": str(pair.image.resolve()), "mask_file": str(pair.mask.resolve()),
        "height": shape[0], "width": shape[1], "shard": f"{SHARDS}/{shard.name}", "position": position,
    }  # fmt: skip


def read_image_manifest(path: str | Path) -> pd.DataFrame:
    """The manifest table; an error naming the file when it is missing, unreadable or lacks columns."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: image cache manifest not found")
    try:
        table = pd.read_csv(path, dtype={"stem": str, "shard_sha256": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable image cache manifest ({exc})") from exc
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: not an image cache manifest (lacks column(s) {', '.join(missing)})")
    if table.empty:
        raise InputError(f"{path}: the manifest lists no samples")
    return table


class ImageMaskSamples:
    """The samples of an image cache as a training SampleSource: `samples[i]` -> (image, mask).

    image is uint8 (H, W, 3) RGB, mask uint8 (H, W) with 0 / 1 / 255 (ignored by the loss). Every
    shard's checksum and contents are checked once, when the source is made. HDF5 handles must not
    cross a fork and cannot be pickled, so each process opens its own on first use (DataLoader workers).
    """

    def __init__(self, manifest: str | os.PathLike):
        self.manifest_path = Path(manifest)
        table = read_image_manifest(self.manifest_path)
        self._rows = list(zip(table["shard"].astype(str), table["position"].astype(int)))
        for shard, rows in table.groupby("shard", sort=True):
            self._check_shard(str(shard), rows)
        self._handles: dict[int, dict[str, h5py.File]] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> Pair:
        shard, position = self._rows[index]
        group = self._handle(shard)[sample_key(position)]
        return group["image"][()], group["mask"][()]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def _handle(self, shard: str) -> h5py.File:
        handles = self._handles.setdefault(os.getpid(), {})
        if shard not in handles:
            handles[shard] = open_hdf5(self.manifest_path.parent / shard, "image cache shard")
        return handles[shard]

    def _check_shard(self, shard: str, rows: pd.DataFrame) -> None:
        path = self.manifest_path.parent / shard
        check_checksum(path, rows["shard_sha256"].iloc[0])
        with open_hdf5(path, "image cache shard") as handle:
            stored = handle.attrs.get("format"), int(handle.attrs.get("samples", -1))
        if stored != (CACHE_FORMAT, len(rows)):
            raise InputError(
                f"{path}: expected an image cache shard ({CACHE_FORMAT}) of {len(rows)} samples, "
                f"found format {stored[0]!r} with {stored[1]} samples"
            )
