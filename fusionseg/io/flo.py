"""Single flow fields on disk: Middlebury .flo files and KITTI 16-bit flow PNGs.

.flo layout (little-endian): the float 202021.25 ("PIEH" as bytes), int32 width, int32 height, then
height*width*2 float32 values, u and v interleaved row by row. Values above 1e9 mark unknown flow.
OpenCV's readOpticalFlow/writeOpticalFlow read and write them; around them, the checks they lack:
readOpticalFlow fails with an allocation error on a negative size in the header, tries to allocate
what a huge one declares, accepts trailing bytes and says nothing about why a file is refused, so the
header and the file's size are checked first (one line naming the file and the problem), and NaN or
infinite values after; writeOpticalFlow reports success on a full disk, so the size written is checked.

KITTI PNG: 16-bit, 3 channels (R, G, B) = (u, v, valid) with u, v = (value - 2^15) / 64 pixels,
valid where the third channel is nonzero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fusionseg.errors import InputError, OutputError
from fusionseg.io.atomic import atomic_file, write_bytes

FLO_TAG = 202021.25
KITTI_OFFSET = 2.0**15
KITTI_SCALE = 64.0
UNKNOWN_FLOW_THRESHOLD = 1e9


def read_flo(path: str | Path) -> np.ndarray:
    """Read a .flo file as float32 (H, W, 2); a clear error for a wrong tag, a truncated file, or NaN or
    infinite values (.flo marks unknown flow with finite values above 1e9: these are damage)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: flow file not found")
    with path.open("rb") as handle:
        header = handle.read(12)
    if len(header) < 12 or np.frombuffer(header[:4], "<f4")[0] != FLO_TAG:
        raise InputError(f"{path}: not a Middlebury .flo file (bad header tag)")
    width, height = (int(x) for x in np.frombuffer(header[4:12], "<i4"))
    size, expected = path.stat().st_size, _flo_bytes(width, height)
    if width <= 0 or height <= 0 or size != expected:
        raise InputError(f"{path}: truncated or malformed .flo ({size} bytes, expected {expected} for {width}x{height})")
    flow = cv2.readOpticalFlow(str(path))
    if flow is None or flow.shape != (height, width, 2):
        raise InputError(f"{path}: OpenCV could not read the .flo file")
    if not np.isfinite(flow).all():
        raise InputError(f"{path}: holds NaN or infinite flow values (damaged .flo; unknown flow is written as values above 1e9)")
    return flow


def write_flo(path: str | Path, flow: np.ndarray) -> None:
    """Write a (H, W, 2) flow field as a .flo file, atomically."""
    import cv2

    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must have shape (H, W, 2), got {flow.shape}")
    expected = _flo_bytes(flow.shape[1], flow.shape[0])
    with atomic_file(path) as tmp:
        written = cv2.writeOpticalFlow(str(tmp), np.ascontiguousarray(flow, dtype=np.float32))
        if not written or tmp.stat().st_size != expected:
            size = tmp.stat().st_size if tmp.exists() else 0
            raise OutputError(f"{path}: could not write the .flo file ({size} of {expected} bytes written; a full disk?)")


def _flo_bytes(width: int, height: int) -> int:
    return 12 + 8 * width * height


def read_kitti_flow(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a KITTI flow PNG: float32 flow (H, W, 2) and the bool validity mask (H, W)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: flow file not found")
    data = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if data is None or data.dtype != np.uint16 or data.ndim != 3 or data.shape[2] != 3:
        raise InputError(f"{path}: not a KITTI flow PNG (16-bit, 3 channels)")
    rgb = data[..., ::-1].astype(np.float32)  # OpenCV returns BGR: u is the last channel read
    flow = (rgb[..., :2] - KITTI_OFFSET) / KITTI_SCALE
    return flow, rgb[..., 2] > 0


def write_kitti_flow(path: str | Path, flow: np.ndarray, valid: np.ndarray | None = None) -> None:
    """Write flow (H, W, 2) as a KITTI PNG, atomically; `valid` defaults to every known pixel."""
    import cv2

    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must have shape (H, W, 2), got {flow.shape}")
    known = (np.abs(flow) <= UNKNOWN_FLOW_THRESHOLD).all(axis=2)
    valid = known if valid is None else np.asarray(valid, dtype=bool) & known
    encoded = np.clip(np.round(flow * KITTI_SCALE + KITTI_OFFSET), 0, 2**16 - 1)
    encoded[~valid] = 0
    rgb = np.dstack([encoded, valid]).astype(np.uint16)
    ok, buf = cv2.imencode(".png", rgb[..., ::-1])
    if not ok:
        raise InputError(f"{path}: could not encode KITTI flow PNG")
    with atomic_file(path) as tmp:
        write_bytes(tmp, buf)


def read_flow_file(path: str | Path) -> np.ndarray:
    """Read a .flo or a KITTI .png flow as (H, W, 2); KITTI's invalid pixels become unknown flow."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        return read_flo(path)
    flow, valid = read_kitti_flow(path)
    flow[~valid] = np.float32(2 * UNKNOWN_FLOW_THRESHOLD)
    return flow
