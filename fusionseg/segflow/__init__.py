"""SegFlow (Cheng et al., ICCV 2017): joint video object segmentation and optical flow in one network."""

from __future__ import annotations

from fusionseg.lazy import lazy_getattr

# Lazy exports: the CLI imports `fusionseg.segflow.cli` through this package, and `fusionseg --help`
# must not pay for importing torch.
_EXPORTS = {
    "SegFlowNet": "fusionseg.segflow.model",
    "load_segflow": "fusionseg.segflow.model",
    "train_segflow": "fusionseg.segflow.train",
    "infer_segflow": "fusionseg.segflow.infer",
    "online_finetune": "fusionseg.segflow.infer",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
