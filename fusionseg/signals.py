"""Signals as exceptions that unwind a step, so that its temporary outputs are removed, and that are
never lost: Ctrl-C raises KeyboardInterrupt (Python's own handler), SIGTERM raises `Terminated`.

Importable without numpy, torch or h5py: the command line uses it before any stage is loaded.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
from typing import Iterator



class Terminated(BaseException):
    """SIGTERM (a scheduler cancelling the job), raised so that temporary outputs are removed."""


# The signal behind each exception, to send it again when the exception is caught where it must not be.
SIGNAL_EXCEPTIONS = {KeyboardInterrupt: signal.SIGINT, Terminated: signal.SIGTERM}


def send_soon(signum: int, delay: float = 0.01) -> threading.Event:
    """Send `signum` to this process in a moment, from another thread: the main thread then handles it
    where it is by then, not inside the code that asks for it. Setting the returned event cancels it."""
    cancelled = threading.Event()

    def send() -> None:
        if not cancelled.wait(delay):
            signal.raise_signal(signum)

    _thread.start_new_thread(send, ())  # not threading.Thread: its start() waits, and may be interrupted
    return cancelled


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """While the block runs, SIGTERM raises `Terminated` (Python would die without unwinding), and a
    signal's exception raised where Python ignores exceptions (a weakref callback, a __del__) is not
    printed and lost: the same signal is sent again."""

    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    def send_again(unraisable) -> None:
        signum = SIGNAL_EXCEPTIONS.get(unraisable.exc_type)
        if signum is None:
            previous_hook(unraisable)
        else:
            send_soon(signum)

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    previous_hook, sys.unraisablehook = sys.unraisablehook, send_again
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = previous_hook
