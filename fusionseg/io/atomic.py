"""Atomic outputs: every stage writes its outputs through `atomic_file` / `atomic_dir`.

An interrupted or failed step never leaves a partial output under the final name (Snakemake would
otherwise trust it). A folder output carries a marker (OUTPUT_MARKER), and an existing folder is
replaced only when it is ours: what the user keeps at an output's place is never deleted
(`check_replaceable`). A write that fails for a reason of the machine (full disk, read-only or
forbidden folder) becomes one `OutputError` naming the output. Temporary names carry the host and
process id, so the next run that writes the same output removes what a killed run left (and never
what a live one is writing).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fnmatch
import json
import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from fusionseg.errors import OutputError

PathLike = str | os.PathLike

_HOST = socket.gethostname().split(".")[0].replace("-", "_") or "host"
# .<output name>.<host>-<pid>.<random>.tmp, the names `temporary_path` makes.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<host>[^.]+)-(?P<pid>\d+)\.[a-z0-9_]+\.tmp$")
# Failures of the machine, not of the input: always about the file being written.
_WRITE_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
_ACCESS_FAULTS = (errno.EACCES, errno.EPERM)
# Written into every folder output: a later run replaces a folder only when it finds this in it.
OUTPUT_MARKER = ".fusionseg-output"


@contextlib.contextmanager
def atomic_file(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    with write_faults_named(path):
        tmp = temporary_path(path, directory=False)
        try:
            yield tmp
            _default_permissions(tmp, 0o666)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: PathLike, kind: str, inputs: Iterable[PathLike] = (), former: FormerOutput | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only if the block succeeds.

    The folder gets the marker OUTPUT_MARKER (`kind`: what it holds), by which a later run knows it
    may replace it. Before any work, and again before replacing, `check_replaceable(path, inputs,
    former)`: a folder that is not ours, or a place never to replace, stops the step untouched.
    """
    path = Path(path)
    inputs = list(inputs)
    check_replaceable(path, inputs, former)
    with write_faults_named(path):
        tmp = temporary_path(path, directory=True)
        try:
            yield tmp
            _write_marker(tmp, kind)
            _default_permissions(tmp, 0o777)
            check_replaceable(path, inputs, former)  # something may have appeared there meanwhile
            _replace_dir(tmp, path)
        except OutputError as exc:  # of a file inside: name it where it was going to be
            raise OutputError(_final_name(Path(exc.path), tmp, path), exc.cause) from exc
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)


@dataclass(frozen=True)
class FormerOutput:
    """How a folder that fusionseg wrote before it marked its folders is still recognised as ours: it
    holds `record` (the file that step writes to describe the folder) and only names matching `names`."""

    record: str
    names: tuple[str, ...]

    def matches(self, folder: Path) -> bool:
        entries = [entry.name for entry in os.scandir(folder)]
        return self.record in entries and all(any(fnmatch.fnmatchcase(e, n) for n in self.names) for e in entries)


def check_replaceable(path: PathLike, inputs: Iterable[PathLike] = (), former: FormerOutput | None = None) -> None:
    """An OutputError unless a folder output may be written at `path`: nothing is there, or an empty
    folder, or a folder of ours (its marker, or `former`). The current folder, the home folder, the
    root, any folder above them and any folder holding one of `inputs` are refused whatever they hold:
    their content is the user's."""
    path = Path(path)
    place = _refused_place(path, inputs)
    if place:
        raise OutputError(path, f"it is {place}; an output folder there would replace it: name a folder of its own")
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise OutputError(path, "something other than a folder is there; it was left as it is")
    if path.exists() and not _is_ours(path, former):
        raise OutputError(
            path, f"a folder fusionseg did not write is there (no {OUTPUT_MARKER} in it); it was left as it is: "
            "remove it or choose another output folder"
        )  # fmt: skip


def _refused_place(path: Path, inputs: Iterable[PathLike]) -> str | None:
    """What `path` is when it must never be replaced (None: an ordinary place)."""
    place = path.resolve()
    if place == Path(place.anchor):
        return "the root folder"
    for label, folder in (("the current folder", Path.cwd()), ("the home folder", Path(os.path.expanduser("~")))):
        folder = folder.resolve()
        if place == folder or place in folder.parents:
            return label if place == folder else f"a folder above {label}"
    for source in map(Path, inputs):
        source = source.resolve()
        if place == source or place in source.parents:
            return f"the input {source}" if place == source else f"a folder holding the input {source}"
    if path.name == "..":  # a/b/..: renaming onto it fails; the folder has a name of its own
        return f"{place}, named through '..'"
    return None


def _is_ours(folder: Path, former: FormerOutput | None) -> bool:
    marker = folder / OUTPUT_MARKER
    if marker.is_file() and not marker.is_symlink():
        return True
    return not any(os.scandir(folder)) or (former is not None and former.matches(folder))


def _write_marker(folder: Path, kind: str) -> None:
    from fusionseg import __version__

    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    record = {"written_by": "fusionseg", "version": __version__, "kind": kind, "created": created}
    (folder / OUTPUT_MARKER).write_text(json.dumps(record) + "\n")


def _replace_dir(tmp: Path, path: Path) -> None:
    """Move `tmp` to `path`. An earlier folder there is first renamed aside under a temporary name, so
    that, if this process dies before it is removed, the next writer of `path` removes it."""
    if not path.exists():
        os.replace(tmp, path)
        return
    aside = temporary_path(path, directory=True)
    os.replace(path, aside)
    os.replace(tmp, path)
    shutil.rmtree(aside, ignore_errors=True)


def _final_name(written: Path, tmp: Path, path: Path) -> Path:
    """Where `written`, a file inside the temporary folder `tmp` of `path`, was going to be."""
    return path / written.relative_to(tmp) if tmp in written.parents else written


def temporary_path(path: Path, directory: bool) -> Path:
    """A new, empty temporary file or folder beside `path` (its parent is made), after removing the
    temporaries that killed runs left for the same output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    prefix, place = f".{path.name}.{_HOST}-{os.getpid()}.", path.parent
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=place))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=place)
    os.close(fd)
    return Path(tmp)


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporaries for `path` whose writer, a process of this host, no longer runs."""
    removed = []
    if not path.parent.is_dir():
        return removed
    for entry in os.scandir(path.parent):
        match = _TEMPORARY.match(entry.name)
        if match and match["name"] == path.name and match["host"] == _HOST and not _running(int(match["pid"])):
            stale = Path(entry.path)
            shutil.rmtree(stale, ignore_errors=True) if entry.is_dir(follow_symlinks=False) else stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@contextlib.contextmanager
def write_faults_named(path: PathLike) -> Iterator[None]:
    """Turn a write failure of the machine inside the block into an OutputError naming `path`.

    Full disk, quota and read-only file system always concern the writing; permission errors only
    when they name `path`, a file below it or beside it (a forbidden input stays what it is).
    """
    path = Path(path)
    try:
        yield
    except OSError as exc:
        if exc.errno in _WRITE_FAULTS or (exc.errno in _ACCESS_FAULTS and _concerns(exc.filename, path)):
            raise OutputError(path, os.strerror(exc.errno).lower()) from exc
        raise


def _concerns(filename: Any, path: Path) -> bool:
    """Whether a failure on `filename` is about writing `path`: the output itself, a folder above it,
    a file inside it, or one of its temporaries (`temporary_path`) or a file inside one."""
    if filename is None:
        return True
    target = Path(os.fsdecode(filename)).absolute()
    place = path.absolute()
    if target == place or target in place.parents or place in target.parents:
        return True
    return any(p.parent == place.parent and p.name.startswith(f".{place.name}.") for p in (target, *target.parents))


def write_bytes(path: PathLike, data: bytes | memoryview | np.ndarray) -> None:
    """Write `data` with Python's file I/O, so that a full disk raises an OSError carrying errno
    (numpy's tofile only says how many bytes it wrote)."""
    with open(path, "wb") as fh:
        fh.write(data)


def _default_permissions(path: Path, mode: int) -> None:
    """mkstemp/mkdtemp create owner-only entries; give the finished output the umask's usual mode."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(mode & ~umask)
