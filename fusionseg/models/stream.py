"""The stream network (one class for both streams, each with its own weights).

Backbone at output stride 8, four parallel 3x3 classifiers with dilation 6, 12, 18 and 24 (two outputs
each: background, foreground) whose outputs are summed, then bilinear upsampling to exactly the
input's height and width. The appearance stream sees RGB frames, the motion stream the colour-coded
flow images; both are normalised like the backbone's ImageNet pretraining.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fusionseg.models.backbones import build_backbone

DILATIONS = (6, 12, 18, 24)
NUM_CLASSES = 2
STREAMS = ("appearance", "motion")


class StreamModel(nn.Module):
    """Input: float RGB in 0..255, (N, 3, H, W). Output: 2-channel logits, (N, 2, H, W)."""

    def __init__(self, backbone: str = "efficientnet_lite0", weights: str = "none", stream: str = "appearance") -> None:
        super().__init__()
        self.arch = {"kind": "stream", "stream": stream, "backbone": backbone}
        self.backbone = build_backbone(backbone, weights, dilated=True)
        self.frozen_batchnorm = weights != "none"
        # Not persistent: they follow from the backbone name, which the checkpoint records.
        self.register_buffer("mean", torch.tensor(self.backbone.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.backbone.std).view(1, 3, 1, 1), persistent=False)
        self.classifiers = nn.ModuleList(
            nn.Conv2d(self.backbone.out_channels, NUM_CLASSES, 3, padding=d, dilation=d) for d in DILATIONS
        )
        # Four summed classifiers over 9 x 1280 inputs start with logits of several units at
        # DeepLab's std 0.01; a smaller start keeps the first steps from chasing that noise.
        for conv in self.classifiers:
            nn.init.normal_(conv.weight, std=0.001)
            nn.init.zeros_(conv.bias)

    def train(self, mode: bool = True) -> "StreamModel":
        """Switch training mode; a pretrained backbone's BatchNorm stays frozen (statistics never update)."""
        super().train(mode)
        if self.frozen_batchnorm:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone.features((images - self.mean) / self.std)
        logits = sum(conv(features) for conv in self.classifiers)
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def foreground_probability(logits: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) logits -> (N, H, W) foreground probability."""
    return logits.float().softmax(dim=1)[:, 1]
