"""Small I/O helpers shared by every stage: atomic outputs and checked reading/writing.

Every stage writes its outputs through `atomic_file` / `atomic_dir`, so an interrupted or failed
step never leaves a partial output under the final name (Snakemake would otherwise trust it). A
folder output carries a marker (OUTPUT_MARKER), and an existing folder is replaced only when it is
ours: what the user keeps at an output's place is never deleted (`check_replaceable`). A
write that fails for a reason of the machine (full disk, read-only or forbidden folder) becomes one
`OutputError` naming the output. Temporary names carry the host and process id, so the next run
that writes the same output removes what a killed run left (and never what a live one is writing).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import cv2
import numpy as np

from fusionseg.errors import InputError, OutputError

if TYPE_CHECKING:
    import h5py
    import pandas as pd

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


@contextlib.contextmanager
def hdf5_output(path: PathLike) -> Iterator[h5py.File]:
    """A new HDF5 file, open for writing, that appears at `path` only when the block succeeds.

    HDF5 writes through a Python file object that never lets an exception reach the library: an
    exception raised into its I/O, or a file it cannot flush, leaves the library in a state that
    crashes the interpreter. A write failure (a full disk) is raised once HDF5 has closed the file, as
    an OutputError naming `path`; signals are kept out of HDF5 (`_signals_kept_out`).
    """
    import h5py

    with atomic_file(path) as tmp, open(tmp, "w+b") as raw:
        sink = _FirstFailure(raw)
        with _signals_kept_out(sink):
            with h5py.File(sink, "w") as handle:
                yield handle
            sink.raise_first()


class _FirstFailure(io.RawIOBase):
    """A file object for h5py that records the first exception of any operation on it and turns the
    operations after it into no-ops, so that HDF5 can always close the file."""

    def __init__(self, raw: io.BufferedRandom) -> None:
        super().__init__()
        self.raw = raw
        self.failure: BaseException | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._guarded(self.raw.seek, offset, whence, otherwise=offset)

    def tell(self) -> int:
        return self._guarded(self.raw.tell, otherwise=0)

    def readinto(self, buffer: Any) -> int:
        return self._guarded(self.raw.readinto, buffer, otherwise=memoryview(buffer).nbytes)

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        self._guarded(self.raw.write, data, otherwise=size)
        return size

    def truncate(self, size: int | None = None) -> int:
        return self._guarded(self.raw.truncate, size, otherwise=size or 0)

    def flush(self) -> None:
        self._guarded(self.raw.flush, otherwise=None)

    def _guarded(self, operation, *args: Any, otherwise: Any) -> Any:
        try:
            if self.failure is None:
                return operation(*args)
        except BaseException as exc:  # whatever it is, HDF5 must not see it
            self.fail(exc)
        return otherwise

    def fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc

    def raise_first(self) -> None:
        self.flush()
        if self.failure is not None:
            raise self.failure


_SINK_CODE = {member.__code__ for member in vars(_FirstFailure).values() if hasattr(member, "__code__")}


@contextlib.contextmanager
def _signals_kept_out(sink: _FirstFailure) -> Iterator[None]:
    """While the block runs, the exception of a Ctrl-C or SIGTERM (what their Python handlers raise)
    never enters HDF5. It is always kept as the sink's failure (HDF5 ends on no-ops; it is raised when
    the file is closed, should this one be lost); raised where it arrives when that is the caller's
    code; held back while `hdf5_output` opens or closes the file; and, when it arrives inside the
    sink's I/O, held back and the signal sent again in a moment, most likely outside it."""
    from fusionseg.signals import send_soon

    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    handlers = {signum: handler for signum, handler in previous.items() if callable(handler)}
    opening_closing = hdf5_output.__wrapped__.__code__
    sent_again = []

    def keep_out(signum: int, frame: Any) -> None:
        try:
            handlers[signum](signum, frame)
        except BaseException as exc:
            sink.fail(exc)
            running = _codes_on_stack(frame)
            if opening_closing in running:
                return
            if running & _SINK_CODE:
                sent_again.append(send_soon(signum))
                return
            raise

    try:
        for signum in handlers:
            signal.signal(signum, keep_out)
    except ValueError:  # not the main thread: its signals are not ours to handle
        handlers = {}
    try:
        yield
    finally:
        for cancel in sent_again:  # the file is closed: the sink's failure, raised now, is that signal
            cancel.set()
        for signum in handlers:
            signal.signal(signum, previous[signum])


def _codes_on_stack(frame: Any) -> set:
    codes = set()
    while frame is not None:
        codes.add(frame.f_code)
        frame = frame.f_back
    return codes


def read_hdf5(dataset: h5py.Dataset, selection: Any, path: PathLike, kind: str) -> np.ndarray:
    """`dataset[selection]`; a chunk that fails its Fletcher-32 check (or cannot be read) is an
    InputError naming the file and what it holds (`kind`)."""
    try:
        return dataset[selection]
    except OSError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: damaged {kind} (HDF5 checksum failed or chunk unreadable: {reason})") from exc


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
