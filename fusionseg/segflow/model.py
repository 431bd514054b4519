"""The SegFlow network (Cheng et al., ICCV 2017): a segmentation branch and an optical-flow branch
that exchange features in both directions.

- Segmentation branch: an ImageNet backbone without classifier (`pyramid`, no dilation); score maps
  from its last three stages (strides 8, 16, 32) are upsampled and summed, FCN-8s style, then
  bilinearly upsampled to the input size.
- Flow branch: FlowNetS on the two stacked frames t and t+1: a contracting encoder (strides 2..64), and
  an expanding decoder that at each scale concatenates the encoder's skip features, its own upsampled
  features and the upsampled coarser flow, then predicts a refined flow (strides 64, 32, 16, 8, 4).
  The frames enter as grey levels, so that the pipeline's flow backends, which see grey frames only,
  run the same flow branch (`fusionseg.segflow.flow_method`).
- Exchange: the segmentation features of strides 8/16/32 are resized to the flow decoder's matching
  scale and concatenated into it (seg_to_flow), and the flow decoder's features of strides 8/16/32 are
  resized to the segmentation scales and concatenated before each score map (flow_to_seg). `exchange`
  switches each direction on or off; a switched-off direction has no layers at all.

Flows are predicted in units of FLOW_SCALE pixels of the input (FlowNet's target scaling keeps the
regression targets near 1); `forward` returns pixels.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Iterable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from fusionseg.errors import InputError
from fusionseg.models.backbones import FrozenBatchNormModule, batchnorms, build_backbone
from fusionseg.models.checkpoint import load_model

EXCHANGES = ("both", "none", "seg_to_flow", "flow_to_seg")
FLOW_SCALE = 20.0
NUM_CLASSES = 2
# The segmentation stages that score and exchange, as indices into `pyramid()` (strides 2..32).
SEG_LEVELS = {8: 2, 16: 3, 32: 4}
# Flow decoder scales, coarse to fine; predictions exist at these strides and at 64.
DECODER_STRIDES = (32, 16, 8, 4)
ENCODER_STRIDES = (2, 4, 8, 16, 32, 64)
# ITU-R BT.601 luma, the weights OpenCV's RGB->grey uses, so the flow backend's grey frames match.
LUMA = (0.299, 0.587, 0.114)
LEAK = 0.1


class SegFlowOutput(NamedTuple):
    logits: torch.Tensor  # (B, 2, H, W) background/foreground scores
    flow: torch.Tensor  # (B, 2, H, W) forward flow t -> t+1 in pixels


class FlowDecoding(NamedTuple):
    predictions: list[torch.Tensor]  # (B, 2, h, w) at strides 64, 32, 16, 8, 4, in FLOW_SCALE pixels
    features: dict[int, torch.Tensor]  # the decoder's concatenated features at strides 32, 16, 8


def exchange_directions(exchange: str) -> tuple[bool, bool]:
    """(seg_to_flow, flow_to_seg) for an exchange setting."""
    if exchange not in EXCHANGES:
        raise ValueError(f"unknown exchange {exchange!r} (choose from {', '.join(EXCHANGES)})")
    return exchange in ("both", "seg_to_flow"), exchange in ("both", "flow_to_seg")


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2), nn.LeakyReLU(LEAK, inplace=True))


class ContiguousGroupNorm(nn.GroupNorm):
    """GroupNorm on a contiguous copy: its CPU backward crashes (segfault, torch 2.13) on the
    channels_last tensors that frames permuted from (H, W, 3) arrays propagate through the backbone."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.contiguous())


def _adapter(cin: int, cout: int) -> nn.Sequential:
    """Normalise, then project to `cout` channels: what one branch hands the other. The backbone's
    block outputs reach magnitudes of tens (unlike its ReLU6 head), which made the plain score maps
    diverge at the learning rate the rest trains at."""
    return nn.Sequential(ContiguousGroupNorm(1, cin), _conv(cin, cout, 1))


def _upconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)


def _crop_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A x2 upsampled map is at least its skip's size (encoders round sizes up); crop the overhang."""
    return x[..., : like.shape[-2], : like.shape[-1]]


def _resize_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class FlowEncoder(nn.Module):
    """FlowNetS's contracting part; `width` 64 is FlowNetS's own (64..1024 channels)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        w = width
        self.channels = (w, 2 * w, 4 * w, 8 * w, 8 * w, 16 * w)
        self.levels = nn.ModuleList(
            [
                _conv(2, w, 7, 2),
                _conv(w, 2 * w, 5, 2),
                nn.Sequential(_conv(2 * w, 4 * w, 5, 2), _conv(4 * w, 4 * w, 3)),
                nn.Sequential(_conv(4 * w, 8 * w, 3, 2), _conv(8 * w, 8 * w, 3)),
                nn.Sequential(_conv(8 * w, 8 * w, 3, 2), _conv(8 * w, 8 * w, 3)),
                nn.Sequential(_conv(8 * w, 16 * w, 3, 2), _conv(16 * w, 16 * w, 3)),
            ]
        )

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        features = {}
        for stride, level in zip(ENCODER_STRIDES, self.levels):
            x = level(x)
            features[stride] = x
        return features


class FlowDecoder(nn.Module):
    """FlowNetS's expanding part, with optional segmentation features at strides 8, 16 and 32."""

    def __init__(self, encoder_channels: tuple[int, ...], width: int, seg_channels: dict[int, int] | None) -> None:
        super().__init__()
        skip = dict(zip(ENCODER_STRIDES, encoder_channels))
        exchange = 2 * width
        self.seg_adapters = nn.ModuleDict({str(s): _adapter(c, exchange) for s, c in (seg_channels or {}).items()})
        self.predict = nn.ModuleDict({"64": nn.Conv2d(skip[64], 2, 3, padding=1)})
        self.upsample_features = nn.ModuleDict()
        self.upsample_flow = nn.ModuleDict()
        self.out_channels: dict[int, int] = {}
        previous = skip[64]
        for stride, up_channels in zip(DECODER_STRIDES, (8 * width, 4 * width, 2 * width, width)):
            self.upsample_features[str(stride)] = _upconv(previous, up_channels)
            self.upsample_flow[str(stride)] = _upconv(2, 2)
            previous = skip[stride] + up_channels + 2 + (exchange if str(stride) in self.seg_adapters else 0)
            self.predict[str(stride)] = nn.Conv2d(previous, 2, 3, padding=1)
            self.out_channels[stride] = previous

    def start_near_zero_flow(self) -> None:
        """Predictors start near zero flow rather than at the tens of pixels He scaling gives them."""
        for predictor in self.predict.values():
            nn.init.normal_(predictor.weight, std=1e-3)
            nn.init.zeros_(predictor.bias)

    def forward(self, encoded: dict[int, torch.Tensor], seg_features: dict[int, torch.Tensor] | None) -> FlowDecoding:
        features = encoded[64]
        flow = self.predict["64"](features)
        predictions, kept = [flow], {}
        for stride in DECODER_STRIDES:
            skip = encoded[stride]
            parts = [
                skip,
                _crop_to(F.leaky_relu(self.upsample_features[str(stride)](features), LEAK), skip),
                _crop_to(self.upsample_flow[str(stride)](flow), skip),
            ]
            if str(stride) in self.seg_adapters:
                parts.append(_resize_to(self.seg_adapters[str(stride)](seg_features[stride]), skip))
            features = torch.cat(parts, dim=1)
            flow = self.predict[str(stride)](features)
            predictions.append(flow)
            if stride in SEG_LEVELS:
                kept[stride] = features
        return FlowDecoding(predictions, kept)


class SegmentationHead(nn.Module):
    """One 3x3 score map per stage (on the stage's normalised features, plus the flow decoder's when
    exchanging), summed coarse to fine with bilinear upsampling."""

    def __init__(self, seg_channels: dict[int, int], flow_channels: dict[int, int] | None, width: int) -> None:
        super().__init__()
        exchange = 2 * width
        self.flow_adapters = nn.ModuleDict({str(s): _adapter(c, exchange) for s, c in (flow_channels or {}).items()})
        self.norms = nn.ModuleDict({str(s): ContiguousGroupNorm(1, c) for s, c in seg_channels.items()})
        self.scores = nn.ModuleDict()
        for stride, channels in seg_channels.items():
            extra = exchange if str(stride) in self.flow_adapters else 0
            self.scores[str(stride)] = nn.Conv2d(channels + extra, NUM_CLASSES, 3, padding=1)
            # Wide inputs (1280 channels at stride 32) give noisy starting logits at default init.
            nn.init.normal_(self.scores[str(stride)].weight, std=0.001)
            nn.init.zeros_(self.scores[str(stride)].bias)

    def forward(
        self, seg_features: dict[int, torch.Tensor], flow_features: dict[int, torch.Tensor] | None, size: torch.Size
    ) -> torch.Tensor:
        logits = None
        for stride in sorted(seg_features, reverse=True):
            features = self.norms[str(stride)](seg_features[stride])
            if str(stride) in self.flow_adapters:
                adapted = _resize_to(self.flow_adapters[str(stride)](flow_features[stride]), features)
                features = torch.cat([features, adapted], dim=1)
            score = self.scores[str(stride)](features)
            logits = score if logits is None else score + _resize_to(logits, score)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class SegFlowNet(FrozenBatchNormModule):
    """Inputs: frames t and t+1, float RGB 0..255, (B, 3, H, W) each."""

    def __init__(
        self, backbone: str = "efficientnet_lite0", weights: str = "none", exchange: str = "both", flow_width: int = 16
    ) -> None:
        super().__init__()
        self.arch = {"kind": "segflow", "backbone": backbone, "exchange": exchange, "flow_width": flow_width}
        self.seg_to_flow, self.flow_to_seg = exchange_directions(exchange)
        self.backbone = build_backbone(backbone, weights, dilated=False)
        self.frozen_batchnorm = weights != "none"
        self.register_buffer("mean", torch.tensor(self.backbone.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.backbone.std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)
        seg_channels = {s: self.backbone.pyramid_channels[i] for s, i in SEG_LEVELS.items()}
        self.flow_encoder = FlowEncoder(flow_width)
        self.flow_decoder = FlowDecoder(self.flow_encoder.channels, flow_width, seg_channels if self.seg_to_flow else None)
        flow_channels = {s: self.flow_decoder.out_channels[s] for s in SEG_LEVELS}
        self.seg_head = SegmentationHead(seg_channels, flow_channels if self.flow_to_seg else None, flow_width)
        _init_leaky(self.flow_encoder, self.flow_decoder)
        self.flow_decoder.start_near_zero_flow()

    def frozen_batchnorms(self) -> Iterable[nn.BatchNorm2d]:
        """A pretrained backbone's BatchNorm stays frozen (its statistics never update)."""
        return batchnorms(self.backbone) if self.frozen_batchnorm else ()

    def segmentation_features(self, frame0: torch.Tensor) -> dict[int, torch.Tensor]:
        levels = self.backbone.pyramid((frame0 - self.mean) / self.std)
        return {stride: levels[index] for stride, index in SEG_LEVELS.items()}

    def decode_flow(
        self, frame0: torch.Tensor, frame1: torch.Tensor, seg_features: dict[int, torch.Tensor] | None
    ) -> FlowDecoding:
        grey = torch.cat([(frame * self.luma).sum(dim=1, keepdim=True) for frame in (frame0, frame1)], dim=1)
        encoded = self.flow_encoder(grey / 255.0 - 0.5)
        return self.flow_decoder(encoded, seg_features if self.seg_to_flow else None)

    def segment(self, frame0: torch.Tensor, frame1: torch.Tensor, train_flow: bool = True) -> torch.Tensor:
        """Segmentation logits of frame t; with train_flow False the flow branch is a fixed feature source."""
        seg_features = self.segmentation_features(frame0)
        flow_features = None
        if self.flow_to_seg:
            with torch.set_grad_enabled(train_flow and torch.is_grad_enabled()):
                flow_features = self.decode_flow(frame0, frame1, seg_features).features
        return self.seg_head(seg_features, flow_features, frame0.shape[-2:])

    def estimate_flow(self, frame0: torch.Tensor, frame1: torch.Tensor, train_seg: bool = True) -> list[torch.Tensor]:
        """Multi-scale flow predictions (strides 64..4, FLOW_SCALE units); with train_seg False the
        segmentation backbone is a fixed feature source."""
        seg_features = None
        if self.seg_to_flow:
            with torch.set_grad_enabled(train_seg and torch.is_grad_enabled()):
                seg_features = self.segmentation_features(frame0)
        return self.decode_flow(frame0, frame1, seg_features).predictions

    def flow(self, frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor:
        """The forward flow t -> t+1 in pixels, (B, 2, H, W)."""
        return full_resolution_flow(self.estimate_flow(frame0, frame1)[-1], frame0.shape[-2:])

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor) -> SegFlowOutput:
        seg_features = self.segmentation_features(frame0)
        decoded = self.decode_flow(frame0, frame1, seg_features)
        logits = self.seg_head(seg_features, decoded.features if self.flow_to_seg else None, frame0.shape[-2:])
        return SegFlowOutput(logits, full_resolution_flow(decoded.predictions[-1], frame0.shape[-2:]))


def full_resolution_flow(prediction: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """The finest prediction (FLOW_SCALE units) bilinearly upsampled to `size`, in pixels."""
    return F.interpolate(prediction, size=size, mode="bilinear", align_corners=False) * FLOW_SCALE


def _init_leaky(*modules: nn.Module) -> None:
    """He (MSRA) initialisation for the leaky-ReLU flow branch, as FlowNet: PyTorch's default is
    scaled for a linear layer and lets activations shrink layer by layer in a from-scratch net."""
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(layer.weight, a=LEAK, nonlinearity="leaky_relu")
                nn.init.zeros_(layer.bias)


def load_segflow(path: str | Path) -> SegFlowNet:
    """Rebuild the SegFlow network a checkpoint file describes and load its weights (eval mode)."""
    return load_model(path, "segflow", build=segflow_from_arch)


def segflow_from_arch(arch: dict) -> SegFlowNet:
    """The (untrained) network a checkpoint's arch describes; the loader is models.checkpoint's."""
    return SegFlowNet(arch["backbone"], "none", arch["exchange"], arch["flow_width"])
