"""Networks: dilated backbones with ImageNet weights, the stream model, the 24-parameter fusion layer."""

from fusionseg.models.backbones import BACKBONES, build_backbone, load_pretrained, shipped_efficientnet_weights
from fusionseg.models.checkpoint import file_sha256, load_model, read_checkpoint, save_checkpoint
from fusionseg.models.fusion import FusionModel, log_probabilities
from fusionseg.models.stream import StreamModel, foreground_probability

__all__ = [
    "BACKBONES",
    "FusionModel",
    "StreamModel",
    "build_backbone",
    "file_sha256",
    "foreground_probability",
    "load_model",
    "load_pretrained",
    "log_probabilities",
    "read_checkpoint",
    "save_checkpoint",
    "shipped_efficientnet_weights",
]
