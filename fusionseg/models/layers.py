"""Building blocks shared by the backbones: convolution + BatchNorm folded, and the phase layout.

Folding. A BatchNorm that normalises with its running statistics (eval mode: always at inference,
and during training when the backbone is pretrained and its BatchNorm frozen) is an affine map per
channel, so it can be folded into the preceding convolution's weights and bias. The folded
convolution computes the same values and, through autograd, the same gradients (for the
convolution's weights and, when they train, BatchNorm's) up to float rounding, while skipping a pass
over the activation both forward and backward. The modules and their state_dict stay as they are.

Phase layout. A convolution dilated by d reads, for each output pixel, only pixels with the same
row and column modulo d: it is an undilated convolution on each of the d x d "phases" of the map.
oneDNN's dilated depthwise convolutions are several times slower on the CPU than its plain ones
(forward, and backward to the input), so the dilated stages of a backbone run on the phases, moved
into the batch; pointwise layers (1x1 convolutions, activations, sums) do not care about the layout,
so a whole run of blocks with one dilation needs one `split` and one `merge`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor, on_phases: bool = False) -> torch.Tensor:
    """`bn(conv(x))`, computed as one convolution when `bn` uses its running statistics.
    `on_phases`: x is in a `PhaseLayout` matching the convolution's dilation (see `convolve`)."""
    if bn.training or bn.running_var is None:
        return bn(convolve(conv, x, conv.weight, conv.bias, on_phases))
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return convolve(conv, x, weight, bias, on_phases)


def convolve(
    conv: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, on_phases: bool = False
) -> torch.Tensor:
    """`conv` applied to `x` with the given weights (its own padding rule included). With `on_phases`
    (a stride-1 convolution whose dilation the phase layout of `x` has absorbed) it runs undilated."""
    if on_phases:
        padding = tuple((k - 1) // 2 for k in conv.kernel_size)
        return F.conv2d(x, weight, bias, 1, padding, 1, conv.groups)
    pad = getattr(conv, "pad_input", None)
    if pad is not None:
        x = pad(x)
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


class PhaseLayout:
    """How an (N, C, H, W) map with spacing d is held as its phases: (N * d * d, C, h, w) with
    h = ceil(H / d), w = ceil(W / d), phase (i, j) of sample n at batch index (n * d + i) * d + j.

    H and W are zero-padded to multiples of d; the padding plays the part of the dilated
    convolution's own zero padding, so `zero_padding` puts it back to zero before a spatial layer
    (a pointwise layer with a bias makes it nonzero). Indexing goes through the channels-last order
    (N, H, W, C): one copy each way for a channels_last map.
    """

    def __init__(self, x: torch.Tensor, d: int):
        self.d = d
        self.batch, _, self.height, self.width = x.shape
        self.rows, self.cols = -(-self.height // d), -(-self.width // d)
        self.valid = None
        if (self.rows * d, self.cols * d) != (self.height, self.width):
            ones = torch.ones(1, 1, self.height, self.width, dtype=x.dtype, device=x.device)
            self.valid = self.split(ones).view(1, d * d, 1, self.rows, self.cols)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(n, C, H, W) -> (n * d * d, C, h, w)."""
        d, batch, channels = self.d, x.shape[0], x.shape[1]
        x = F.pad(x, (0, self.cols * d - self.width, 0, self.rows * d - self.height))
        pixels = x.permute(0, 2, 3, 1).reshape(batch, self.rows, d, self.cols, d, channels)
        phases = pixels.permute(0, 2, 4, 1, 3, 5).reshape(batch * d * d, self.rows, self.cols, channels)
        return phases.permute(0, 3, 1, 2)

    def merge(self, phases: torch.Tensor) -> torch.Tensor:
        """(N * d * d, C, h, w) -> (N, C, H, W), the padding dropped."""
        d, channels = self.d, phases.shape[1]
        pixels = phases.permute(0, 2, 3, 1).reshape(self.batch, d, d, self.rows, self.cols, channels)
        full = pixels.permute(0, 3, 1, 4, 2, 5).reshape(self.batch, self.rows * d, self.cols * d, channels)
        return full.permute(0, 3, 1, 2)[:, :, : self.height, : self.width]

    @property
    def padded(self) -> bool:
        return self.valid is not None

    def zero_padding(self, phases: torch.Tensor) -> torch.Tensor:
        if self.valid is None:
            return phases
        channels = phases.shape[1]
        masked = phases.reshape(self.batch, self.d * self.d, channels, self.rows, self.cols) * self.valid
        return masked.reshape(phases.shape)
