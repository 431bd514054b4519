"""ResNet-50/101 in plain PyTorch with torchvision's parameter names, so its ImageNet files load as is.

Names follow torchvision (`conv1`, `bn1`, `layer1`..`layer4` of `Bottleneck`s with `downsample.0/1`,
`fc`); the stride sits on the 3x3 convolution (ResNet v1.5), as in torchvision's checkpoints.
With `dilated=True`, layer3 and layer4 keep stride 1 and use dilation 2 and 4 (output stride 8), the
way torchvision's `replace_stride_with_dilation=[False, True, True]` does: the first block of a dilated
layer still uses the previous dilation.
"""

from __future__ import annotations

import torch
from torch import nn

from fusionseg.models.layers import conv_bn

DEPTHS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}
WIDTHS = (64, 128, 256, 512)
EXPANSION = 4
MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided or dilated), 1x1 expand, plus the (projected) identity."""

    def __init__(self, cin: int, width: int, stride: int, dilation: int, downsample: nn.Module | None) -> None:
        super().__init__()
        cout = width * EXPANSION
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else conv_bn(self.downsample[0], self.downsample[1], x)
        out = self.relu(conv_bn(self.conv1, self.bn1, x))
        out = self.relu(conv_bn(self.conv2, self.bn2, out))
        out = conv_bn(self.conv3, self.bn3, out)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """The backbone; `features` gives the 2048-channel layer4 output, `forward` the ImageNet logits."""

    mean = MEAN
    std = STD
    out_channels = WIDTHS[-1] * EXPANSION
    pyramid_channels = (64, *(w * EXPANSION for w in WIDTHS))

    def __init__(self, depth: str = "resnet101", dilated: bool = True, num_classes: int | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._channels = 64
        self._dilation = 1
        dilate = (False, False, dilated, dilated)
        layers = [self._make_layer(w, n, 1 if i == 0 else 2, dilate[i]) for i, (w, n) in enumerate(zip(WIDTHS, DEPTHS[depth]))]
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(self.out_channels, num_classes) if num_classes else None
        self._init_weights()

    def _make_layer(self, width: int, blocks: int, stride: int, dilate: bool) -> nn.Sequential:
        first_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self._channels != width * EXPANSION:
            downsample = nn.Sequential(
                nn.Conv2d(self._channels, width * EXPANSION, 1, stride=stride, bias=False),
                nn.BatchNorm2d(width * EXPANSION),
            )
        layers = [Bottleneck(self._channels, width, stride, first_dilation, downsample)]
        self._channels = width * EXPANSION
        layers += [Bottleneck(self._channels, width, 1, self._dilation, None) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(conv_bn(self.conv1, self.bn1, x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at strides 2, 4, 8, 16 and 32 without dilation (stem, layer1..layer4), finest first."""
        stem = self.relu(conv_bn(self.conv1, self.bn1, x))
        levels = [stem]
        x = self.maxpool(stem)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            levels.append(x)
        return levels

    def stages(self) -> list[list[nn.Module]]:
        """The modules of each stage, input first: the stem (conv1, bn1), layer1 .. layer4."""
        return [[self.conv1, self.bn1], [self.layer1], [self.layer2], [self.layer3], [self.layer4]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fc is None:
            raise RuntimeError("ResNet was built without a classifier (num_classes=None)")
        return self.fc(self.features(x).mean(dim=(2, 3)))
