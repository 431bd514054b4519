"""The TSN network: a pixel-level memory stream and an instance stream with dynamic heads, fused by
a routing map (Lu et al., "Two-Stream Networks for Object Segmentation in Videos"), built on STCN.

Shapes: frames are float RGB 0..255 (B, 3, H, W); features live at stride 16 (h, w), where memory
keys (C_k channels) and values (C_v channels) are read. For one object (B = objects or samples):

  key encoder   backbone pyramid -> key K (C_k), feature F^t (C_v), skips at strides 8 and 4
  value encoder backbone on frame + mask (4 channels), fused with the key encoder's stride-16
                features and the mask at stride 16 -> V (C_v)
  pixel stream  A = softmax over memory of -||k_q - k_m||^2 / sqrt(C_k) (top-k at inference),
                R_V = V_M A, F_pix = ResBlock([R_V, F^t])
  instance      E_init attends to the value tokens of each reference frame n (3 transformer
  stream        decoder layers) -> the 232 parameters of a head of three 1x1 convolutions (10 -> 8
                -> 8 -> 8, ReLU between) run on [w(F^t), coordinates relative to the object's
                centroid in frame n]; heads averaged over the frames where the object appears,
                F_inst = ResBlock([heads, F^t])
  routing       R_K = K_M A, D = mean_c (R_K - K_Q)^2, W = sigmoid(a D + b),
                F = W F_inst + (1 - W) F_pix
  decoder       FPN style: F -> stride 8 (+ skip) -> stride 4 (+ skip) -> 1 logit, bilinear to (H, W)

With `streams: pixel` there is no instance stream and no routing: F = F_pix (the paper's ablation).
Several objects: one pass per object over shared keys, then `aggregate` (soft aggregation, STM/STCN).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fusionseg.models.backbones import FrozenBatchNormModule, batchnorms, build_backbone
from fusionseg.tsn.memory import Memory, affinity

STREAMS = ("both", "pixel")
# The dynamic head: input [w(F^t) (8 channels), relative x, y] -> 8 -> 8 -> 8 channels.
HEAD_CHANNELS = 8
HEAD_INPUT = HEAD_CHANNELS + 2
HEAD_SHAPES = ((HEAD_CHANNELS, HEAD_INPUT), (HEAD_CHANNELS, HEAD_CHANNELS), (HEAD_CHANNELS, HEAD_CHANNELS))
HEAD_PARAMS = sum(out * inp + out for out, inp in HEAD_SHAPES)  # 232
KERNEL_LAYERS = 3
KERNEL_HEADS = 4
# Pyramid levels (finest first: strides 2, 4, 8, 16, 32) the decoder and the memory use.
LEVEL_4, LEVEL_8, LEVEL_16 = 1, 2, 3
# A reference frame holds the object when its mask covers at least this many stride-16 cells.
MIN_PRESENT_CELLS = 0.5


def tsn_arch(params: dict) -> dict:
    """What a checkpoint must record to rebuild the network (the `arch` of docs/architecture.md)."""
    return {
        "kind": "tsn",
        "backbone": params["backbone"],
        "streams": params["streams"],
        "key_channels": params["key_channels"],
        "value_channels": params["value_channels"],
        "decoder_channels": list(params["decoder_channels"]),
        "kernel_dim": params["kernel_dim"],
        "head_params": HEAD_PARAMS,
    }


class ResBlock(nn.Module):
    """Two 3x3 convolutions with pre-activation and a skip (1x1 projection when channels change)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv2(F.relu(self.conv1(F.relu(x))))
        return self.skip(x) + residual


class UpsampleBlock(nn.Module):
    """Upsample coarse features to a skip level, add the projected skip features, then a ResBlock."""

    def __init__(self, skip_channels: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_channels, in_channels, 3, padding=1)
        self.block = ResBlock(in_channels, out_channels)

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(coarse, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(self.skip_conv(skip) + up)


@dataclass
class QueryFeatures:
    """The key encoder's output for a batch of frames."""

    key: torch.Tensor  # (B, C_k, h, w)
    feature: torch.Tensor  # F^t (B, C_v, h, w)
    level16: torch.Tensor  # backbone features at stride 16, for the value encoder
    skip8: torch.Tensor
    skip4: torch.Tensor

    def select(self, index: slice | torch.Tensor) -> "QueryFeatures":
        return QueryFeatures(*(t[index] for t in (self.key, self.feature, self.level16, self.skip8, self.skip4)))


def relative_coordinates(centroids: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 2) centroids (x, y in cells) -> (B, 2, h, w): each cell's offset from it, divided by the map size."""
    ys = torch.arange(height, dtype=centroids.dtype, device=centroids.device).view(1, height, 1)
    xs = torch.arange(width, dtype=centroids.dtype, device=centroids.device).view(1, 1, width)
    dx = (xs - centroids[:, 0].view(-1, 1, 1)) / width
    dy = (ys - centroids[:, 1].view(-1, 1, 1)) / height
    return torch.stack([dx.expand(-1, height, width), dy.expand(-1, height, width)], dim=1)


def mask_centroids(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, h, w) soft masks -> centroids (B, 2) (x, y in cells) and presence (B,) as 0/1 floats."""
    _, _, height, width = masks.shape
    mass = masks.flatten(1).sum(1)
    ys = torch.arange(height, dtype=masks.dtype, device=masks.device).view(1, height, 1)
    xs = torch.arange(width, dtype=masks.dtype, device=masks.device).view(1, 1, width)
    weights = masks[:, 0] / mass.clamp(min=1e-6).view(-1, 1, 1)
    centroids = torch.stack([(weights * xs).flatten(1).sum(1), (weights * ys).flatten(1).sum(1)], dim=1)
    return centroids, (mass >= MIN_PRESENT_CELLS).to(masks.dtype)


def dynamic_head(inputs: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Run per-sample 1x1 convolutions: inputs (N, HEAD_INPUT, h, w), params (N, HEAD_PARAMS) -> (N, 8, h, w)."""
    n, _, height, width = inputs.shape
    x = inputs.flatten(2)
    offset = 0
    for layer, (out, inp) in enumerate(HEAD_SHAPES):
        weight = params[:, offset : offset + out * inp].view(n, out, inp)
        offset += out * inp
        bias = params[:, offset : offset + out].view(n, out, 1)
        offset += out
        x = weight @ x + bias
        if layer < len(HEAD_SHAPES) - 1:
            x = F.relu(x)
    return x.view(n, HEAD_CHANNELS, height, width)


class KeyEncoder(nn.Module):
    def __init__(self, backbone: str, weights: str, key_channels: int, feature_channels: int) -> None:
        super().__init__()
        self.backbone = build_backbone(backbone, weights, dilated=False)
        channels = self.backbone.pyramid_channels[LEVEL_16]
        self.key_proj = nn.Conv2d(channels, key_channels, 3, padding=1)
        self.feature_proj = nn.Conv2d(channels, feature_channels, 3, padding=1)
        # Orthogonal projection keeps the backbone's distances at the start (STCN does the same).
        nn.init.orthogonal_(self.key_proj.weight.data)
        nn.init.zeros_(self.key_proj.bias.data)

    def forward(self, normalised: torch.Tensor) -> QueryFeatures:
        levels = self.backbone.pyramid(normalised)
        level16 = levels[LEVEL_16]
        return QueryFeatures(self.key_proj(level16), self.feature_proj(level16), level16, levels[LEVEL_8], levels[LEVEL_4])


class ValueEncoder(nn.Module):
    """A second backbone on RGB + mask (its first convolution gains a mask input), fused with the key
    encoder's features of the frame and the mask itself at stride 16.

    The mask also enters at stride 16 because frozen ImageNet layers pass the stem's mask signal on
    unevenly: in flat regions it fades, and a decoder reading such values segments by appearance
    instead of by memory (measured on synthetic clips of textured and flat objects).
    """

    def __init__(self, backbone: str, weights: str, key_level_channels: int, value_channels: int) -> None:
        super().__init__()
        self.backbone = build_backbone(backbone, weights, dilated=False)
        self.stem = _add_stem_input(self.backbone)
        channels = self.backbone.pyramid_channels[LEVEL_16]
        self.fuse = ResBlock(channels + key_level_channels + 1, value_channels)

    def forward(self, normalised: torch.Tensor, masks: torch.Tensor, key_level16: torch.Tensor) -> torch.Tensor:
        level16 = self.backbone.pyramid(torch.cat([normalised, masks], dim=1))[LEVEL_16]
        small = F.interpolate(masks, size=level16.shape[-2:], mode="area")
        return self.fuse(torch.cat([level16, key_level16, small], dim=1))


def _add_stem_input(backbone: nn.Module) -> str:
    """Give the first convolution a fourth (mask) input channel; returns the convolution's name.

    The RGB weights are kept; the mask's are orthogonal (as STCN does), so the mask shapes the
    features from the first step at the scale of the RGB response.
    """
    name = getattr(backbone, "stem_name", "_conv_stem" if hasattr(backbone, "_conv_stem") else "conv1")
    owner_name, _, attribute = name.rpartition(".")
    owner = backbone.get_submodule(owner_name) if owner_name else backbone
    old = getattr(owner, attribute)
    new = type(old)(
        old.in_channels + 1, old.out_channels, old.kernel_size, stride=old.stride, padding=old.padding,
        dilation=old.dilation, groups=old.groups, bias=old.bias is not None,
    )  # fmt: skip
    mask_weights = torch.empty(old.out_channels, 1, *old.kernel_size)
    nn.init.orthogonal_(mask_weights)
    with torch.no_grad():
        new.weight.copy_(torch.cat([old.weight, mask_weights], dim=1))
        if old.bias is not None:
            new.bias.copy_(old.bias)
    setattr(owner, attribute, new)
    return name


class InstanceStream(nn.Module):
    """Kernel predictor (E_init attending to reference-frame values) and the dynamic heads."""

    def __init__(self, value_channels: int, dim: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(value_channels, HEAD_CHANNELS, 1)  # w(F^t)
        self.value_proj = nn.Linear(value_channels, dim)
        self.embedding = nn.Parameter(torch.randn(1, 1, dim) * 0.02)  # E_init
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(dim, KERNEL_HEADS, 2 * dim, dropout=0.0, batch_first=True)
            for _ in range(KERNEL_LAYERS)
        )
        self.to_params = nn.Linear(dim, HEAD_PARAMS)
        # Small initial kernels: the heads start near zero instead of adding noise to F_inst.
        nn.init.normal_(self.to_params.weight, std=0.01)
        nn.init.zeros_(self.to_params.bias)
        self.out = ResBlock(HEAD_CHANNELS + value_channels, value_channels)

    def kernels(self, values: torch.Tensor) -> torch.Tensor:
        """Value features of one reference frame per sample (B, C_v, h, w) -> head parameters (B, 232)."""
        tokens = self.value_proj(values.flatten(2).transpose(1, 2))
        query = self.embedding.expand(len(values), -1, -1)
        for layer in self.layers:
            query = layer(query, tokens)
        return self.to_params(query[:, 0])

    def forward(self, feature: torch.Tensor, memory: Memory) -> torch.Tensor:
        """F_inst for query features (B, C_v, h, w) from the memory's kernels (one set per object)."""
        batch, _, height, width = feature.shape
        reduced = self.reduce(feature)
        present = torch.stack(memory.present, dim=1)  # (B, T)
        weights = present / present.sum(1, keepdim=True).clamp(min=1)
        heads = torch.zeros(batch, HEAD_CHANNELS, height, width, dtype=feature.dtype, device=feature.device)
        for kernels, centroids, weight in zip(memory.kernels, memory.centroids, weights.unbind(1)):
            inputs = torch.cat([reduced, relative_coordinates(centroids, height, width)], dim=1)
            heads = heads + weight.view(-1, 1, 1, 1) * dynamic_head(inputs, kernels)
        return self.out(torch.cat([heads, feature], dim=1))


class Decoder(nn.Module):
    def __init__(self, in_channels: int, skip_channels: tuple[int, int], channels: list[int]) -> None:
        super().__init__()
        c16, c8, c4 = channels
        self.compress = ResBlock(in_channels, c16)
        self.up_16_8 = UpsampleBlock(skip_channels[0], c16, c8)
        self.up_8_4 = UpsampleBlock(skip_channels[1], c8, c4)
        self.pred = nn.Conv2d(c4, 1, 3, padding=1)

    def forward(self, fused: torch.Tensor, skip8: torch.Tensor, skip4: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = self.up_8_4(skip4, self.up_16_8(skip8, self.compress(fused)))
        logits = self.pred(F.relu(x))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class TSNModel(FrozenBatchNormModule):
    """Training: forward(frames (B, T, 3, H, W), first masks (B, 1, H, W)) -> logits (B, T-1, H, W) of
    frames 1.. (each predicted from the memory of the frames before it). Inference: `encode_keys`,
    `memorise` and `segment` (fusionseg.tsn.infer drives them over a sequence)."""

    def __init__(self, arch: dict, weights: str = "none") -> None:
        super().__init__()
        if arch["streams"] not in STREAMS:
            raise ValueError(f"unknown streams {arch['streams']!r}")
        self.arch = dict(arch)
        self.top_k: int | None = None  # training reads the whole memory; inference sets k
        value_channels = arch["value_channels"]
        self.key_encoder = KeyEncoder(arch["backbone"], weights, arch["key_channels"], value_channels)
        level_channels = self.key_encoder.backbone.pyramid_channels
        self.value_encoder = ValueEncoder(arch["backbone"], weights, level_channels[LEVEL_16], value_channels)
        self.frozen_batchnorm = weights != "none"
        self.register_buffer("mean", torch.tensor(self.key_encoder.backbone.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.key_encoder.backbone.std).view(1, 3, 1, 1), persistent=False)
        self.pixel_block = ResBlock(2 * value_channels, value_channels)
        self.instance = InstanceStream(value_channels, arch["kernel_dim"]) if self.has_instance else None
        self.routing = nn.Conv2d(1, 1, 1) if self.has_instance else None
        if self.routing is not None:  # W = 0.5 at the start: both streams count equally until trained
            nn.init.zeros_(self.routing.weight)
            nn.init.zeros_(self.routing.bias)
        self.decoder = Decoder(value_channels, (level_channels[LEVEL_8], level_channels[LEVEL_4]), arch["decoder_channels"])

    def pretrained_parameter_names(self) -> set[str]:
        """The parameters that come from ImageNet: both backbones but the value encoder's new stem."""
        names = {f"key_encoder.backbone.{n}" for n, _ in self.key_encoder.backbone.named_parameters()}
        stem = f"{self.value_encoder.stem}."
        names |= {f"value_encoder.backbone.{n}" for n, _ in self.value_encoder.backbone.named_parameters() if not n.startswith(stem)}
        return names

    def frozen_batchnorms(self) -> Iterable[nn.BatchNorm2d]:
        """Pretrained encoders keep their BatchNorm frozen."""
        return batchnorms(self) if self.frozen_batchnorm else ()

    @property
    def has_instance(self) -> bool:
        return self.arch["streams"] == "both"

    def normalise(self, frames: torch.Tensor) -> torch.Tensor:
        return (frames - self.mean) / self.std

    def encode_keys(self, frames: torch.Tensor) -> QueryFeatures:
        return self.key_encoder(self.normalise(frames))

    def memorise(self, memory: Memory, frames: torch.Tensor, query: QueryFeatures, masks: torch.Tensor) -> None:
        """Add one reference frame: frames (1 or B, 3, H, W) with its features, masks (B, 1, H, W) in [0, 1].

        Keys are per frame; values, kernels and centroids per mask (one per object at inference).
        """
        count = len(masks)
        normalised = self.normalise(frames).expand(count, -1, -1, -1)
        values = self.value_encoder(normalised, masks, query.level16.expand(count, -1, -1, -1))
        memory.keys.append(query.key)
        memory.values.append(values)
        if self.instance is not None:
            small = F.interpolate(masks, size=values.shape[-2:], mode="area")
            centroids, present = mask_centroids(small)
            memory.kernels.append(self.instance.kernels(values))
            memory.centroids.append(centroids)
            memory.present.append(present)

    def segment(
        self, query: QueryFeatures, memory: Memory, size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, 1, H, W) for each memory object, and the routing map W (b, 1, h, w) (None: pixel only)."""
        _, _, height, width = query.key.shape
        query_keys = query.key.flatten(2)
        memory_keys = memory.flat_keys()
        weights = affinity(memory_keys, query_keys, self.top_k)
        readout = (memory.flat_values() @ weights).view(-1, self.arch["value_channels"], height, width)
        count = len(readout)
        feature = query.feature.expand(count, -1, -1, -1)
        fused = self.pixel_block(torch.cat([readout, feature], dim=1))
        routing = None
        if self.instance is not None:
            distance = (memory_keys @ weights - query_keys).pow(2).mean(1).view(-1, 1, height, width)
            routing = torch.sigmoid(self.routing(distance))
            fused = routing * self.instance(feature, memory) + (1 - routing) * fused
        skip8 = query.skip8.expand(count, -1, -1, -1)
        skip4 = query.skip4.expand(count, -1, -1, -1)
        return self.decoder(fused, skip8, skip4, size), routing

    def forward(self, frames: torch.Tensor, first_masks: torch.Tensor) -> torch.Tensor:
        batch, count = frames.shape[:2]
        size = frames.shape[-2:]
        flat = frames.flatten(0, 1)
        queries = self.encode_keys(flat)
        per_frame = [queries.select(torch.arange(t, batch * count, count, device=flat.device)) for t in range(count)]
        memory = Memory()
        self.memorise(memory, frames[:, 0], per_frame[0], first_masks)
        logits = []
        for t in range(1, count):
            frame_logits, _ = self.segment(per_frame[t], memory, size)
            logits.append(frame_logits)
            if t < count - 1:
                self.memorise(memory, frames[:, t], per_frame[t], torch.sigmoid(frame_logits))
        return torch.cat(logits, dim=1)
