"""HDF5 files: writing one atomically (`hdf5_output`), with write failures and signals kept out of
the HDF5 library, and opening and reading them with errors that name the file.

HDF5 writes through a Python file object that never lets an exception reach the library: an
exception raised into its I/O, or a file it cannot flush, leaves the library in a state that crashes
the interpreter. So the file object records the first failure and turns what follows into no-ops,
and a Ctrl-C or SIGTERM that arrives inside HDF5's I/O is held back until HDF5 has returned.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from fusionseg.errors import InputError
from fusionseg.io.atomic import PathLike, atomic_file

if TYPE_CHECKING:
    import h5py


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


def read_hdf5(dataset: h5py.Dataset, selection: Any, path: PathLike, kind: str) -> np.ndarray:
    """`dataset[selection]`; a chunk that fails its Fletcher-32 check (or cannot be read) is an
    InputError naming the file and what it holds (`kind`)."""
    try:
        return dataset[selection]
    except OSError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: damaged {kind} (HDF5 checksum failed or chunk unreadable: {reason})") from exc
