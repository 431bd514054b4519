"""U²-Netp (Qin et al., "U²-Net: Going deeper with nested U-structure for salient object detection",
Pattern Recognition 2020), the 1.1M-parameter variant, in plain PyTorch.

Six encoder stages of residual U-blocks (RSU-7, 6, 5, 4, then two dilated RSU-4F), five decoder stages,
a 3x3 side output on each of the six deepest-to-shallowest maps, and a 1x1 convolution fusing the six
side outputs (upsampled to the input size) into the saliency map. Every block is 16 channels inside
and 64 outside. Each convolution is followed by ReLU; the shipped weights (converted from the ONNX
file of the rembg background remover, `fusionseg convert-u2netp`) have BatchNorm folded into the
convolutions, so `REBNConv` is a biased convolution and a ReLU.

Parameter names follow the authors' release (`stage1.rebnconvin.conv_s1.weight`, `side1.weight`,
`outconv.weight`) without its BatchNorm entries.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fusionseg.errors import ConfigError, InputError

INNER = 16
OUTER = 64
# The saliency network's input: RGB at 320x320, scaled to 0..1 by the image's maximum, then ImageNet
# mean and std (rembg's preprocessing, which the DUTS weights were trained with).
INPUT_SIZE = 320
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIDES = 6
WEIGHTS_DIR = Path(__file__).with_name("weights")
WEIGHTS_FILE = "u2netp-duts.pt"


class REBNConv(nn.Module):
    """3x3 convolution (dilated by `dilation`, size kept) and ReLU; BatchNorm is folded into it."""

    def __init__(self, cin: int, cout: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv_s1(x), inplace=True)


def upsample_like(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=target.shape[-2:], mode="bilinear", align_corners=False)


def _pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2, stride=2, ceil_mode=True)


class RSU(nn.Module):
    """Residual U-block of `height` levels: an input convolution, an encoder of `height - 1` convolutions
    with 2x max pooling between them (the deepest one dilated by 2 instead of pooled), a decoder that
    upsamples and concatenates back up, and the input convolution's output added to the result."""

    def __init__(self, height: int, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.height = height
        self.rebnconvin = REBNConv(cin, cout)
        self.rebnconv1 = REBNConv(cout, mid)
        for level in range(2, height):
            setattr(self, f"rebnconv{level}", REBNConv(mid, mid))
        setattr(self, f"rebnconv{height}", REBNConv(mid, mid, dilation=2))
        for level in range(height - 1, 1, -1):
            setattr(self, f"rebnconv{level}d", REBNConv(2 * mid, mid))
        self.rebnconv1d = REBNConv(2 * mid, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        entry = self.rebnconvin(x)
        skips = [self.rebnconv1(entry)]
        for level in range(2, self.height):
            skips.append(getattr(self, f"rebnconv{level}")(_pool(skips[-1])))
        up = getattr(self, f"rebnconv{self.height}")(skips[-1])
        for level in range(self.height - 1, 0, -1):
            up = getattr(self, f"rebnconv{level}d")(torch.cat((up, skips[level - 1]), 1))
            if level > 1:
                up = upsample_like(up, skips[level - 2])
        return up + entry


class RSU4F(nn.Module):
    """The RSU-4 block without pooling: dilations 1, 2, 4, 8 keep the (already small) map's size."""

    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.rebnconvin = REBNConv(cin, cout)
        self.rebnconv1 = REBNConv(cout, mid)
        self.rebnconv2 = REBNConv(mid, mid, dilation=2)
        self.rebnconv3 = REBNConv(mid, mid, dilation=4)
        self.rebnconv4 = REBNConv(mid, mid, dilation=8)
        self.rebnconv3d = REBNConv(2 * mid, mid, dilation=4)
        self.rebnconv2d = REBNConv(2 * mid, mid, dilation=2)
        self.rebnconv1d = REBNConv(2 * mid, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        entry = self.rebnconvin(x)
        x1 = self.rebnconv1(entry)
        x2 = self.rebnconv2(x1)
        x3 = self.rebnconv3(x2)
        x4 = self.rebnconv4(x3)
        up = self.rebnconv3d(torch.cat((x4, x3), 1))
        up = self.rebnconv2d(torch.cat((up, x2), 1))
        up = self.rebnconv1d(torch.cat((up, x1), 1))
        return up + entry


def _block(height: int, cin: int) -> nn.Module:
    return RSU4F(cin, INNER, OUTER) if height == 0 else RSU(height, cin, INNER, OUTER)


# Encoder stages 1..6 and decoder stages 5d..1d by RSU height (0: RSU-4F).
ENCODER_HEIGHTS = (7, 6, 5, 4, 0, 0)
DECODER_HEIGHTS = {5: 0, 4: 4, 3: 5, 2: 6, 1: 7}


class U2NetP(nn.Module):
    """Input: normalised RGB (N, 3, H, W). `forward` returns the fused logit map and the six side logit
    maps, all (N, 1, H, W) (sigmoid gives saliency); `decode` returns the decoder's 64-channel maps
    (stage 1d at full size first) for heads that reuse them."""

    def __init__(self) -> None:
        super().__init__()
        for index, height in enumerate(ENCODER_HEIGHTS, start=1):
            setattr(self, f"stage{index}", _block(height, 3 if index == 1 else OUTER))
        for index, height in DECODER_HEIGHTS.items():
            setattr(self, f"stage{index}d", _block(height, 2 * OUTER))
        for index in range(1, SIDES + 1):
            setattr(self, f"side{index}", nn.Conv2d(OUTER, 1, 3, padding=1))
        self.outconv = nn.Conv2d(SIDES, 1, 1)

    def stages(self) -> list[list[nn.Module]]:
        """The modules of each stage, input first: encoder stages 1-6, decoder stages 5d-1d, side outputs."""
        names = [f"stage{i}" for i in range(1, 7)] + [f"stage{i}d" for i in range(5, 0, -1)]
        return [[getattr(self, name)] for name in names] + [[getattr(self, f"side{i}") for i in range(1, SIDES + 1)]]

    def decode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps the side outputs read: stage 1d, 2d, 3d, 4d, 5d (decoder) and stage 6 (bridge)."""
        skips = []
        for index in range(1, 6):
            skips.append(getattr(self, f"stage{index}")(x))
            x = _pool(skips[-1])
        maps = [self.stage6(x)]
        for index in range(5, 0, -1):
            up = upsample_like(maps[0], skips[index - 1])
            maps.insert(0, getattr(self, f"stage{index}d")(torch.cat((up, skips[index - 1]), 1)))
        return maps

    def side_logits(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """One logit map per decoder map, upsampled to the first (full-size) map's size."""
        sides = [getattr(self, f"side{index}")(m) for index, m in enumerate(maps, start=1)]
        return [sides[0]] + [upsample_like(side, sides[0]) for side in sides[1:]]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        sides = self.side_logits(self.decode(x))
        return (self.outconv(torch.cat(sides, 1)), *sides)


def shipped_weights() -> Path:
    """The DUTS-trained U²-Netp weights that ship inside the package (fusionseg/models/weights)."""
    return WEIGHTS_DIR / WEIGHTS_FILE


def load_u2netp(weights: str) -> U2NetP:
    """U²-Netp with weights 'duts' (the shipped file), 'none' (random), or a path to a state dict file."""
    from fusionseg.models.backbones import read_state_dict

    model = U2NetP()
    if weights == "none":
        return model
    if weights == "imagenet":
        raise ConfigError("weights: u2netp has no ImageNet weights; use 'duts' (the shipped DUTS-trained weights), 'none' or a path")
    path = shipped_weights() if weights == "duts" else Path(weights)
    state = read_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"{path}: does not match the U²-Netp architecture ({str(exc).splitlines()[0]})") from exc
    return model


class U2NetPEncoder(nn.Module):
    """U²-Netp's six encoder stages as a backbone for networks that need a feature pyramid (TSN's key and
    value encoders): `pyramid(x)` gives the stage outputs at strides 2, 4, 8, 16 and 32 (64 channels
    each), like the other backbones' `pyramid`. Input: RGB 0..255, normalised with `mean`/`std`."""

    mean = tuple(255 * m for m in IMAGENET_MEAN)
    std = tuple(255 * s for s in IMAGENET_STD)
    pyramid_channels = (OUTER,) * 5
    # The first convolution, which TSN's value encoder widens to take the mask.
    stem_name = "stage1.rebnconvin.conv_s1"

    def __init__(self, network: U2NetP) -> None:
        super().__init__()
        for index in range(1, 7):
            setattr(self, f"stage{index}", getattr(network, f"stage{index}"))

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = []
        x = self.stage1(x)
        for index in range(2, 7):
            x = getattr(self, f"stage{index}")(_pool(x))
            levels.append(x)
        return levels

    def stages(self) -> list[list[nn.Module]]:
        return [[getattr(self, f"stage{index}")] for index in range(1, 7)]
