"""Reading mask PNGs for scoring: foreground = label > 0, decoded as fast as the file type allows.

Decoding dominates scoring. OpenCV decodes grey PNGs (DAVIS-2016 ground truth, this pipeline's
masks) faster than Pillow and releases the GIL, so threads decode in parallel. For grey images the
values OpenCV returns are the stored grey levels, so label > 0 is the same as with
`fusionseg.io.read_mask`. Palette PNGs (DAVIS-2017 object ids) need their indices, which OpenCV
would expand to colours, so they and every other kind (RGB, grey with alpha, damaged files) go
through `read_mask`, which also gives the clear error for unreadable files.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fusionseg.errors import InputError
from fusionseg.io import read_mask

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# IHDR is always the first chunk: its colour-type byte sits at a fixed offset of the file.
COLOUR_TYPE_OFFSET = 25
GREY = 0


def read_foreground(path: Path) -> np.ndarray:
    """A mask PNG as a bool array, True where the label (grey level or palette index) is > 0."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: mask file not found")
    data = np.fromfile(path, dtype=np.uint8)
    if _is_complete_grey_png(data):
        labels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if labels is not None and labels.ndim == 2:
            return labels > 0
    return read_mask(path)


def read_labels(path: Path) -> np.ndarray:
    """A mask PNG as its uint8 labels: grey levels or palette indices (object ids, 255 void)."""
    from fusionseg.io import read_label_image

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: mask file not found")
    data = np.fromfile(path, dtype=np.uint8)
    if _is_complete_grey_png(data):
        labels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if labels is not None and labels.ndim == 2 and labels.dtype == np.uint8:
            return labels
    labels = read_label_image(path)
    if labels.ndim == 3:
        raise InputError(f"{path}: a colour mask has no object ids (expected grey or palette PNG)")
    return labels.astype(np.uint8)


def _is_complete_grey_png(data: np.ndarray) -> bool:
    """A PNG of colour type grey whose IEND chunk is present (a truncated file is left to `read_mask`)."""
    header = data[: COLOUR_TYPE_OFFSET + 1].tobytes()
    return (
        len(header) > COLOUR_TYPE_OFFSET
        and header.startswith(PNG_SIGNATURE)
        and header[12:16] == b"IHDR"
        and header[COLOUR_TYPE_OFFSET] == GREY
        and b"IEND" in data[-12:].tobytes()
    )
