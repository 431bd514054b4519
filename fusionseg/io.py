"""Small I/O helpers shared by every stage: atomic outputs and checked image reading/writing.

Every stage writes its outputs through `atomic_file` / `atomic_dir`, so an interrupted or failed
step never leaves a partial output under the final name (Snakemake would otherwise trust it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from fusionseg.errors import InputError

PathLike = str | os.PathLike


@contextlib.contextmanager
def atomic_file(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        _default_permissions(tmp, 0o666)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _default_permissions(tmp, 0o777)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _default_permissions(path: Path, mode: int) -> None:
    """mkstemp/mkdtemp create owner-only entries; give the finished output the umask's usual mode."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(mode & ~umask)


def open_hdf5(path: PathLike, kind: str):
    """Open an HDF5 file for reading; a clear error naming it when it is missing or not HDF5.

    `kind` says what the file should be ("flow file", "probability file") in the message.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {kind} not found")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 {kind} ({exc})") from exc


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


def write_image(path: PathLike, rgb: np.ndarray, jpeg_quality: int = 95) -> None:
    """Write an RGB uint8 image (JPEG or PNG by extension)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise InputError(f"{path}: could not encode image")
    buf.tofile(path)


def write_mask(path: PathLike, mask: np.ndarray) -> None:
    """Write a binary mask as a DAVIS-2016 style PNG: 0 background, 255 foreground, 8-bit grey."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", np.where(mask, 255, 0).astype(np.uint8))
    if not ok:
        raise InputError(f"{path}: could not encode mask")
    buf.tofile(path)


def write_labels(path: PathLike, labels: np.ndarray) -> None:
    """Write object ids (uint8, 0 background, 1..K objects) as an 8-bit grey PNG: the mask format of
    multi-object ground truth and predictions (read back by `read_label_image`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", labels.astype(np.uint8))
    if not ok:
        raise InputError(f"{path}: could not encode mask")
    buf.tofile(path)


def _fully_decoded(path: Path, data: np.ndarray) -> bool:
    """OpenCV decodes truncated JPEGs with a grey tail and only a warning; check the end marker."""
    if path.suffix.lower() in (".jpg", ".jpeg"):
        tail = data[-64:].tobytes().rstrip(b"\x00\r\n ")
        return tail.endswith(b"\xff\xd9")
    if path.suffix.lower() == ".png":
        return b"IEND" in data[-32:].tobytes()
    return True
