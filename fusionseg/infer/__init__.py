"""Inference: stream and joint probabilities per sequence, and binary masks from them."""

from __future__ import annotations

from fusionseg.lazy import lazy_getattr

# Lazy exports, so that `fusionseg --help` (which imports this package to find its cli) stays fast.
_EXPORTS = {
    name: "fusionseg.infer.probs" for name in ("read_object_ids", "read_probs", "read_probs_attrs", "write_probs")
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
