"""Checked reading and writing of plain files: torch payloads (tensors and plain types only), CSV
tables, and the digests that identify files (`file_sha256`) and training inputs (`fingerprint`)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from fusionseg.errors import InputError
from fusionseg.io.atomic import PathLike, atomic_file

if TYPE_CHECKING:
    import pandas as pd


def save_torch(path: PathLike, payload: Any) -> None:
    """torch.save atomically, through a Python file object: a full disk is then an OutputError
    naming `path` (torch's own file writer reports it as an internal RuntimeError)."""
    import torch

    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        try:
            torch.save(payload, fh)
        except RuntimeError as exc:
            # The zip writer's cleanup fails after a failed write and hides it: raise the write's error.
            if isinstance(exc.__context__, OSError):
                raise exc.__context__ from None
            raise


def load_torch(path: PathLike, kind: str) -> Any:
    """torch.load of tensors and plain containers only (weights_only); one line naming the file and
    what it is not, instead of PyTorch's advice about weights_only."""
    import pickle
    import warnings

    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {kind} not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle protocol notices of foreign files
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        objects = list(dict.fromkeys(re.findall(r"GLOBAL (\S+)", str(exc))))
        if objects:
            raise InputError(
                f"{path}: not a {kind}: it holds Python objects ({', '.join(objects)}) besides tensors, "
                "which are not loaded (unsafe)"
            ) from exc
        raise InputError(f"{path}: not a {kind} (not written by torch.save, or truncated)") from exc
    except Exception as exc:  # truncated zip, foreign format, ...: torch raises many types
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0]}" if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a {kind} (not written by torch.save, or truncated: {reason})") from exc


def fingerprint(paths: Iterable[PathLike]) -> dict[str, str]:
    """Per path, a digest of the files it holds (relative names, sizes and modification times;
    folders walked recursively; a missing path has digest 'missing'). Resumed training compares them
    to know whether its data changed."""
    digests = {}
    for path in map(Path, paths):
        digest = hashlib.sha256()
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.is_file():
                stat = file.stat()
                digest.update(f"{file.relative_to(path) if file != path else file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        digests[str(path)] = digest.hexdigest() if path.exists() else "missing"
    return digests


def read_table(path: PathLike, kind: str, columns: Sequence[str] = (), **read_csv: Any) -> pd.DataFrame:
    """A CSV table; one line naming the file when it is missing, unreadable or lacks `columns`."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {kind} not found")
    try:
        table = pd.read_csv(path, **read_csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a readable {kind} ({reason})") from exc
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{path}: not a {kind} (missing column(s) {', '.join(missing)})")
    return table


def file_sha256(path: PathLike) -> str:
    """The SHA-256 of a file's bytes (hex), read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
