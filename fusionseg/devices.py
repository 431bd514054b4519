"""The one device choice every step makes: auto (CUDA when present), cpu or cuda; and the one CPU
thread count every step's --threads sets."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fusionseg.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")
log = logging.getLogger(__name__)


def resolve_device(requested: str) -> torch.device:
    """'auto' picks CUDA when present; 'cuda' without CUDA falls back to the CPU with a warning."""
    import torch  # imported on use: the CLI parser needs DEVICES without loading torch

    if requested not in DEVICES:
        raise ConfigError(f"device: unknown device '{requested}' (choose from {', '.join(DEVICES)})")
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        log.warning("device cuda requested but CUDA is not available: running on the CPU")
    return torch.device("cpu")


def set_threads(threads: int | None) -> None:
    """Match the job's CPU allocation (--threads): torch and OpenCV otherwise start a thread per core.
    None leaves their own choice; 0 or a negative count is a ConfigError, never silently ignored."""
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"--threads: must be at least 1 (got {threads})")
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
