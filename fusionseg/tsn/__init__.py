"""TSN: the two-stream semi-supervised network (pixel memory stream + instance stream with dynamic
heads, fused by a routing map): model, training clips, training, inference and its commands."""

from __future__ import annotations

from fusionseg.lazy import lazy_getattr

# Lazy exports, so that `fusionseg --help` (which imports this package to find its cli) stays fast.
_EXPORTS = {
    "TSNModel": "fusionseg.tsn.model",
    "aggregate": "fusionseg.tsn.memory",
    "affinity": "fusionseg.tsn.memory",
    "train_tsn": "fusionseg.tsn.train",
    "tsn_params": "fusionseg.tsn.train",
    "infer_tsn": "fusionseg.tsn.infer",
    "load_tsn": "fusionseg.tsn.infer",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
