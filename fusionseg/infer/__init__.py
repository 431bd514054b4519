"""Inference: stream and joint probabilities per sequence, and binary masks from them."""

from __future__ import annotations

import importlib
from typing import Any

# Lazy exports, so that `fusionseg --help` (which imports this package to find its cli) stays fast.
_EXPORTS = {name: "fusionseg.infer.probs" for name in ("read_probs", "read_probs_attrs", "write_probs")}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
