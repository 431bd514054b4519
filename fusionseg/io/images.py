"""Image codecs: colour images, masks and label images read and written with errors that name the
file, and the paths OpenCV can be given."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from fusionseg.errors import InputError
from fusionseg.io.atomic import PathLike, write_bytes


def utf8_path(path: PathLike, needed_by: str) -> str:
    """`path` as text; an InputError naming it when it is not valid UTF-8 (`needed_by` says what cannot
    take such a name)."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{path}: the name is not valid UTF-8, which {needed_by}: rename it") from None
    return text


def opencv_path(path: PathLike) -> str:
    """`path` as OpenCV's video reader and writer take it: given a name that is not valid UTF-8, OpenCV
    crashes the interpreter."""
    return utf8_path(path, "OpenCV cannot open")


def read_image(path: PathLike) -> np.ndarray:
    """Read a colour image as an RGB uint8 array (H, W, 3); a clear error if it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: image file not found")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None or not _fully_decoded(path, data):
        raise InputError(f"{path}: not a readable image (corrupt or truncated file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: PathLike, threshold: int = 0) -> np.ndarray:
    """Read a mask PNG (palette, grey or RGB) as a bool array: foreground where the label > threshold.

    Palette PNGs are read as their indices (object ids), not their colours, so DAVIS-2017 masks merge
    to one foreground with threshold 0; anti-aliased (resampled) masks want threshold 127.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: mask file not found")
    labels = read_label_image(path)
    if labels.ndim == 3:
        labels = labels.max(axis=2)
    return labels > threshold


def read_label_image(path: PathLike) -> np.ndarray:
    """Read a PNG's raw values: palette indices for palette images, grey or RGB values otherwise."""
    from PIL import Image  # Pillow keeps palette indices; OpenCV would expand them to colours

    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode == "P":
                return np.asarray(img)
            if img.mode in ("1", "L", "I", "I;16"):
                return np.asarray(img.convert("L") if img.mode == "1" else img)
            return np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from exc


def write_image(path: PathLike, rgb: np.ndarray, jpeg_quality: int = 95, image_format: str | None = None) -> None:
    """Write an RGB uint8 image, JPEG or PNG by `image_format` (a suffix), else by the path's suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = image_format or path.suffix
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix.lower() in (".jpg", ".jpeg") else []
    try:
        ok, buf = cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    except cv2.error:  # no encoder for the suffix
        ok = False
    if not ok:
        raise InputError(f"{path}: could not encode an image as '{suffix}' (use .png or .jpg)")
    write_bytes(path, buf)


def write_mask(path: PathLike, mask: np.ndarray) -> None:
    """Write a binary mask as a DAVIS-2016 style PNG: 0 background, 255 foreground, 8-bit grey."""
    write_labels(path, np.where(mask, 255, 0).astype(np.uint8))


def write_labels(path: PathLike, labels: np.ndarray) -> None:
    """Write object ids (uint8, 0 background, 1..K objects) as an 8-bit grey PNG: the mask format of
    multi-object ground truth and predictions (read back by `read_label_image`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", labels.astype(np.uint8))
    if not ok:
        raise InputError(f"{path}: could not encode mask")
    write_bytes(path, buf)


def _fully_decoded(path: Path, data: np.ndarray) -> bool:
    """OpenCV decodes truncated JPEGs with a grey tail and only a warning; check the end marker."""
    if path.suffix.lower() in (".jpg", ".jpeg"):
        tail = data[-64:].tobytes().rstrip(b"\x00\r\n ")
        return tail.endswith(b"\xff\xd9")
    if path.suffix.lower() == ".png":
        return b"IEND" in data[-32:].tobytes()
    return True
