"""Middlebury .flo files: the interchange format for a single dense flow field.

Layout (little-endian): the float 202021.25 ("PIEH" as bytes), int32 width, int32 height, then
height*width*2 float32 values, u and v interleaved row by row. Values above 1e9 mark unknown flow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fusionseg.errors import InputError
from fusionseg.io import atomic_file

FLO_TAG = 202021.25
UNKNOWN_FLOW_THRESHOLD = 1e9


def read_flo(path: str | Path) -> np.ndarray:
    """Read a .flo file as float32 (H, W, 2); a clear error for a wrong tag or a truncated file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: flow file not found")
    raw = path.read_bytes()
    if len(raw) < 12 or np.frombuffer(raw[:4], "<f4")[0] != FLO_TAG:
        raise InputError(f"{path}: not a Middlebury .flo file (bad header tag)")
    width, height = (int(x) for x in np.frombuffer(raw[4:12], "<i4"))
    expected = 12 + 8 * width * height
    if width <= 0 or height <= 0 or len(raw) != expected:
        raise InputError(f"{path}: truncated or malformed .flo ({len(raw)} bytes, expected {expected} for {width}x{height})")
    return np.frombuffer(raw[12:], "<f4").reshape(height, width, 2).astype(np.float32)


def write_flo(path: str | Path, flow: np.ndarray) -> None:
    """Write a (H, W, 2) flow field as a .flo file, atomically."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must have shape (H, W, 2), got {flow.shape}")
    height, width = flow.shape[:2]
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as fh:
            np.array([FLO_TAG], "<f4").tofile(fh)
            np.array([width, height], "<i4").tofile(fh)
            flow.astype("<f4").tofile(fh)
