"""HDF5 shards of training samples (colour-coded flow image, mask, provenance) and their manifest.

Shard file `shard-00000.h5` (write-once; written under a temporary name, renamed when complete):

    attrs   format = "fusionseg-shard-1", samples = number of samples, compression
    samples/000000/flow   uint8 (H, W, 3) colour-coded flow, one chunk, compressed, Fletcher-32 checked
    samples/000000/mask   uint8 (H, W) in {0, 1}, one chunk, compressed, Fletcher-32 checked
    samples/000000/rgb    uint8 (H, W, 3) RGB frame (only when the bootstrap stored it)
    samples/000000 attrs  dataset, sequence, frame, boxes (JSON [[x0, y0, x1, y1], ...]), model_sha256

Each sample is its own group, so frames of different sizes share a shard. The manifest
(`manifest.csv`, written last) has one row per sample: sample, shard (path relative to the manifest's
folder), position, dataset, sequence, frame, height, width, boxes, model_sha256, has_rgb, and the
shard's checksum and size as columns shard_sha256 and shard_samples (repeated on each of its rows).
"""

from __future__ import annotations

from fusionseg.lazy import lazy_getattr

# Lazy exports: the CLI imports this package to find its `cli` module, and `fusionseg --help` must
# not pay for importing torch and h5py.
_EXPORTS = {
    "Sample": "fusionseg.shards.writer",
    "ShardWriter": "fusionseg.shards.writer",
    "write_manifest": "fusionseg.shards.writer",
    "ShardDataset": "fusionseg.shards.dataset",
    "verify_manifest": "fusionseg.shards.verify",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
