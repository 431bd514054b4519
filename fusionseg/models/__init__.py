"""Networks: dilated backbones with ImageNet weights, the stream model, the 24-parameter fusion layer."""

from __future__ import annotations

from fusionseg.lazy import lazy_getattr

# Lazy exports: the CLI looks for `fusionseg.models.cli`, which imports this package, and
# `fusionseg --help` must not pay for importing torch.
_EXPORTS = {
    "BACKBONES": "fusionseg.models.backbones",
    "build_backbone": "fusionseg.models.backbones",
    "load_pretrained": "fusionseg.models.backbones",
    "shipped_efficientnet_weights": "fusionseg.models.backbones",
    "load_model": "fusionseg.models.checkpoint",
    "read_checkpoint": "fusionseg.models.checkpoint",
    "save_checkpoint": "fusionseg.models.checkpoint",
    "FusionModel": "fusionseg.models.fusion",
    "log_probabilities": "fusionseg.models.fusion",
    "StreamModel": "fusionseg.models.stream",
    "foreground_probability": "fusionseg.models.stream",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
