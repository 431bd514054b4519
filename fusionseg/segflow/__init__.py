"""SegFlow (Cheng et al., ICCV 2017): joint video object segmentation and optical flow in one network.

Importing the package registers its flow branch as the flow method `segflow` (fusionseg.flow.methods).
"""

from __future__ import annotations

from fusionseg.flow.methods import register_method
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


def _flow_backend(params: dict, device):
    """The flow method `segflow`: the flow branch of a trained SegFlow model (fusionseg.segflow.flow_method)."""
    from fusionseg.segflow.flow_method import segflow_backend

    return segflow_backend(params, device)


register_method("segflow", _flow_backend)
