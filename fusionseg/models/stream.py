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

from fusionseg.errors import ConfigError
from fusionseg.models.backbones import BACKBONES, FrozenBatchNormModule, build_backbone
from fusionseg.models.u2net import IMAGENET_MEAN, IMAGENET_STD, SIDES, load_u2netp

DILATIONS = (6, 12, 18, 24)
NUM_CLASSES = 2
TAPS = 9  # positions of a 3x3 kernel
STREAMS = ("appearance", "motion")
STREAM_BACKBONES = (*BACKBONES, "u2netp")


class StreamModel(FrozenBatchNormModule):
    """Input: float RGB in 0..255, (N, 3, H, W). Output: 2-channel logits, (N, 2, H, W)."""

    # Channels-last weights and activations: images arrive in that layout (HWC arrays permuted), oneDNN's
    # depthwise convolutions are fastest in it (1.5-2x over NCHW, forward and backward), and the phase
    # layout of the dilated stages (models.layers) indexes through it. Values are unchanged.
    memory_format = torch.channels_last

    def __init__(self, backbone: str = "efficientnet_lite0", weights: str = "none", stream: str = "appearance") -> None:
        super().__init__()
        self.arch = {"kind": "stream", "stream": stream, "backbone": backbone}
        self.backbone = build_backbone(backbone, weights, dilated=True)
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
        self.register_buffer("tap_selector", _tap_selector(), persistent=False)
        self.to(memory_format=self.memory_format)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone.features(((images - self.mean) / self.std).contiguous(memory_format=self.memory_format))
        logits = self.classify(features)
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """The sum of the four dilated 3x3 classifiers, as one 1x1 convolution giving each tap of each
        classifier (4 x 9 x 2 maps), then per classifier a fixed 18->2 dilated convolution that only
        shifts and adds its taps. Same values as running the four convolutions, whose own backward
        (1280 inputs, 2 outputs) is several times slower on the CPU."""
        weight = torch.cat([conv.weight.permute(2, 3, 0, 1).reshape(TAPS * NUM_CLASSES, -1) for conv in self.classifiers])
        taps = F.conv2d(features, weight[:, :, None, None])
        logits = sum(
            F.conv2d(part, self.tap_selector, padding=d, dilation=d)
            for part, d in zip(taps.split(TAPS * NUM_CLASSES, dim=1), DILATIONS)
        )
        return logits + sum(conv.bias for conv in self.classifiers).view(1, -1, 1, 1)


def _tap_selector() -> torch.Tensor:
    """(2, 18, 3, 3) weights that put input channel 2t + c (tap t = 3 * row + column, class c) at kernel
    position t of output c: convolving a classifier's tap maps with it sums them, each shifted to its tap."""
    selector = torch.zeros(NUM_CLASSES, TAPS * NUM_CLASSES, 3, 3)
    for tap in range(TAPS):
        for cls in range(NUM_CLASSES):
            selector[cls, tap * NUM_CLASSES + cls, tap // 3, tap % 3] = 1
    return selector


def foreground_probability(logits: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) logits -> (N, H, W) foreground probability."""
    return logits.float().softmax(dim=1)[:, 1]


class SaliencyStreamModel(nn.Module):
    """A stream on U²-Netp (backbone `u2netp`): the salient-object network's six side outputs, computed
    at the input's full size, feed a 2-class 1x1 head. With weights `duts` the head starts as the
    network's own fusion of its side outputs (background logit 0, foreground logit the saliency
    logit), so before fine-tuning the stream is the DUTS saliency network. Full-size outputs keep
    the boundaries that stride-8 classifiers blur. Same interface as StreamModel.

    With `input_size` S, every input is resized to S x S (aspect not kept) and the logits back to the
    input's size: U²-Netp learned objects at the scale of its 320 x 320 training images (on the
    validation split the DUTS network gives J 51.6 at 320 x 320 against 46.9 at the frames' 427 x 240)."""

    memory_format = torch.channels_last
    # U²-Netp was trained on images scaled to 0..1 and ImageNet-normalised; inputs here are 0..255.
    MEAN = tuple(255 * m for m in IMAGENET_MEAN)
    STD = tuple(255 * s for s in IMAGENET_STD)

    def __init__(self, weights: str = "none", stream: str = "appearance", input_size: int | None = None) -> None:
        super().__init__()
        self.arch = {"kind": "stream", "stream": stream, "backbone": "u2netp", "input_size": input_size}
        self.input_size = input_size
        self.backbone = load_u2netp(weights)
        fused = self.backbone.outconv
        self.backbone.outconv = None  # replaced by the head; not trained, not saved
        self.head = nn.Conv2d(SIDES, NUM_CLASSES, 1)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.zero_()
            self.head.weight[1] = fused.weight[0]
            self.head.bias[1] = fused.bias[0]
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1), persistent=False)
        self.to(memory_format=self.memory_format)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = images.shape[-2:]
        if self.input_size and tuple(size) != (self.input_size, self.input_size):
            images = F.interpolate(images, size=(self.input_size,) * 2, mode="bilinear", align_corners=False, antialias=True)
        x = ((images - self.mean) / self.std).contiguous(memory_format=self.memory_format)
        logits = self.head(torch.cat(self.backbone.side_logits(self.backbone.decode(x)), 1))
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits


def build_stream(backbone: str, weights: str = "none", stream: str = "appearance", input_size: int | None = None) -> nn.Module:
    """The stream network for a backbone name: U²-Netp's full-resolution saliency stream, or the
    paper's dilated backbone with four atrous classifiers (which take any input size as it is)."""
    if backbone == "u2netp":
        return SaliencyStreamModel(weights, stream, input_size)
    if input_size:
        raise ConfigError(f"input_size: only for backbone u2netp ({backbone} sees frames at their own size)")
    return StreamModel(backbone, weights, stream)


def stream_from_arch(arch: dict) -> nn.Module:
    """An untrained stream network of a checkpoint's recorded architecture, to load its weights into."""
    return build_stream(arch["backbone"], "none", arch["stream"], arch.get("input_size"))
