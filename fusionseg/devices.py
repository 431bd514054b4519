"""The one device choice every step makes: auto (CUDA when present), cpu or cuda."""

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
