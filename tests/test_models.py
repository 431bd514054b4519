"""Backbones, stream and fusion networks, checkpoints."""

from __future__ import annotations

import cv2
import pytest
import torch
from torch import nn

from fusionseg.errors import ConfigError, InputError
from fusionseg.io import read_image
from fusionseg.models import (
    FusionModel,
    StreamModel,
    build_backbone,
    load_model,
    load_pretrained,
    log_probabilities,
    save_checkpoint,
    shipped_efficientnet_weights,
)
from fusionseg.models.efficientnet import EfficientNetLite0
from fusionseg.models.resnet import ResNet


# Tiny models run fastest on one thread, above all on a machine shared with other jobs.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("size", [(40, 56), (37, 61), (33, 17)])
def test_stream_output_has_the_input_size(size):
    model = StreamModel("efficientnet_lite0", "none").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size) * 255)
    assert out.shape == (2, 2, *size)


def test_stream_resnet_output_has_the_input_size():
    model = StreamModel("resnet50", "none").eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 35, 49) * 255)
    assert out.shape == (1, 2, 35, 49)


def _conv_attrs(model: nn.Module, kernel: int = 3) -> list[tuple[int, int]]:
    return [(m.stride[0], m.dilation[0]) for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size[0] >= kernel]


def test_efficientnet_dilation_gives_output_stride_8():
    dilated, plain = EfficientNetLite0(dilated=True), EfficientNetLite0(dilated=False)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert dilated.features(x).shape[-2:] == (8, 12)
        assert plain.features(x).shape[-2:] == (2, 3)
    attrs = _conv_attrs(dilated)
    assert sum(s == 2 for s, _ in attrs) == 3  # stem and the first two strided stages
    assert {d for _, d in attrs} == {1, 2, 4}
    # the last stage (and the last block of the stride-32 stage) run at dilation 4
    assert attrs[-1] == (1, 4)


def test_resnet_dilation_gives_output_stride_8():
    model = ResNet("resnet50", dilated=True)
    with torch.no_grad():
        assert model.features(torch.rand(1, 3, 64, 96)).shape[-2:] == (8, 12)
    layer3 = [m.conv2 for m in model.layer3]
    layer4 = [m.conv2 for m in model.layer4]
    assert all(c.stride == (1, 1) for c in layer3 + layer4)
    assert [c.dilation[0] for c in layer3] == [1] + [2] * (len(layer3) - 1)
    assert [c.dilation[0] for c in layer4] == [2] + [4] * (len(layer4) - 1)
    assert model.layer3[0].downsample[0].stride == (1, 1)


def test_stream_classifiers_use_dilations_6_12_18_24():
    model = StreamModel("efficientnet_lite0", "none")
    assert [c.dilation[0] for c in model.classifiers] == [6, 12, 18, 24]
    assert all(c.kernel_size == (3, 3) and c.out_channels == 2 for c in model.classifiers)


def test_pretrained_batchnorm_stays_frozen_in_training():
    model = StreamModel("efficientnet_lite0", "imagenet").train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert all(not p.requires_grad for m in bns for p in m.parameters())
    before = bns[0].running_mean.clone()
    model(torch.rand(2, 3, 32, 32) * 255).sum().backward()
    assert torch.equal(bns[0].running_mean, before)
    assert model.classifiers[0].weight.grad is not None


def test_from_scratch_batchnorm_trains():
    model = StreamModel("efficientnet_lite0", "none").train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.training for m in bns) and all(p.requires_grad for m in bns for p in m.parameters())


def test_pretrained_efficientnet_loads_every_key():
    state = torch.load(shipped_efficientnet_weights(), map_location="cpu", weights_only=True)
    model = EfficientNetLite0(dilated=True, num_classes=1000)
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    stream_backbone = build_backbone("efficientnet_lite0", "imagenet")
    assert stream_backbone._fc is None
    assert torch.equal(stream_backbone._conv_stem.weight, state["_conv_stem.weight"])


def test_torchvision_format_resnet_round_trip(tmp_path):
    source = ResNet("resnet50", dilated=False, num_classes=1000)
    path = tmp_path / "resnet50-random.pth"
    torch.save(source.state_dict(), path)
    assert "layer4.2.conv3.weight" in source.state_dict() and "fc.weight" in source.state_dict()
    loaded = load_pretrained("resnet50", path, dilated=True, keep_classifier=True)
    assert torch.equal(loaded.layer3[5].conv2.weight, source.layer3[5].conv2.weight)
    assert torch.equal(loaded.fc.bias, source.fc.bias)
    model = StreamModel("resnet50", str(path))
    assert torch.equal(model.backbone.conv1.weight, source.conv1.weight)


def test_weights_file_with_wrong_keys_is_named(tmp_path):
    state = ResNet("resnet50", dilated=False, num_classes=1000).state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["layer1.0.conv1.weight"]
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(InputError, match=r"bad\.pth.*missing key.*layer1\.0\.conv1\.weight.*unexpected key.*extra\.weight"):
        build_backbone("resnet50", str(path))


def test_imagenet_weights_only_ship_for_efficientnet():
    with pytest.raises(ConfigError, match="resnet101"):
        build_backbone("resnet101", "imagenet")


def test_fusion_has_24_parameters():
    assert sum(p.numel() for p in FusionModel().parameters() if p.requires_grad) == 24


def test_fusion_is_the_max_of_three_branches():
    model = FusionModel()
    with torch.no_grad():
        model.appearance.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]).view(2, 2, 1, 1))
        model.appearance.bias.copy_(torch.tensor([0.5, -1.0]))
        model.motion.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]).view(2, 2, 1, 1))
        model.motion.bias.copy_(torch.tensor([0.0, 0.0]))
        model.joint_appearance.weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 1.0]]).view(2, 2, 1, 1))
        model.joint_appearance.bias.copy_(torch.tensor([1.0, 0.0]))
        model.joint_motion.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, -1.0]]).view(2, 2, 1, 1))
        model.joint_motion.bias.copy_(torch.tensor([0.0, 3.0]))
    app = torch.tensor([1.0, -2.0, 3.0, 0.5]).view(1, 2, 2, 1)  # pixels (1,3) and (-2,0.5)
    mot = torch.tensor([0.5, 4.0, -1.0, 2.0]).view(1, 2, 2, 1)
    expected = torch.empty(1, 2, 2, 1)
    for y in range(2):
        a0, a1 = app[0, :, y, 0].tolist()
        m0, m1 = mot[0, :, y, 0].tolist()
        branch_a = [max(a0 + 0.5, 0), max(2 * a1 - 1, 0)]
        branch_m = [max(m1, 0), max(m0, 0)]
        branch_j = [max(a0 + a1 + 1, 0) * max(2 * m0, 0), max(a1, 0) * max(-m1 + 3, 0)]
        for c in range(2):
            expected[0, c, y, 0] = max(branch_a[c], branch_m[c], branch_j[c])
    with torch.no_grad():
        out = model(app, mot)
    torch.testing.assert_close(out, expected)
    # the maximum is really taken from different branches here
    a, m, j = model.branches(app, mot)
    winners = {int(torch.stack([a, m, j]).argmax(0)[0, c, y, 0]) for c in range(2) for y in range(2)}
    assert len(winners) >= 2


def test_fusion_starts_by_reproducing_its_streams():
    p = torch.tensor([[[0.1, 0.7], [0.95, 0.5]]])
    logp = log_probabilities(p)
    with torch.no_grad():
        fused = FusionModel().appearance(logp).softmax(1)[:, 1]
    torch.testing.assert_close(fused, p, atol=1e-4, rtol=0)


def test_checkpoint_round_trip_and_errors(tmp_path):
    model = StreamModel("efficientnet_lite0", "none", stream="motion")
    path = tmp_path / "motion.pt"
    save_checkpoint(path, model, {"iterations": 1}, 1)
    loaded = load_model(path, "stream", "motion")
    assert torch.equal(loaded.classifiers[0].weight, model.classifiers[0].weight)
    with pytest.raises(InputError, match=r"motion\.pt.*expected a stream \(appearance\)"):
        load_model(path, "stream", "appearance")
    with pytest.raises(InputError, match=r"motion\.pt.*expected a fusion"):
        load_model(path, "fusion")
    payload = torch.load(path, weights_only=True)
    payload["arch"]["backbone"] = "resnet50"
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(InputError, match=r"mismatch\.pt.*do not match"):
        load_model(tmp_path / "mismatch.pt", "stream")
    (tmp_path / "corrupt.pt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(InputError, match=r"corrupt\.pt.*not a checkpoint \(not written by torch.save, or truncated"):
        load_model(tmp_path / "corrupt.pt", "stream")


def _imagenet_probabilities(model: nn.Module, path) -> torch.Tensor:
    image = cv2.resize(read_image(path), (224, 224), interpolation=cv2.INTER_LINEAR)
    x = (torch.from_numpy(image).permute(2, 0, 1).float()[None] - 127.5) / 128
    with torch.no_grad():
        return model(x).softmax(1)[0]


def test_pretrained_efficientnet_classifies_real_frames(shared_data):
    model = load_pretrained("efficientnet_lite0", shipped_efficientnet_weights(), dilated=False, keep_classifier=True)
    model.eval()
    frames = shared_data / "davis2016" / "JPEGImages" / "480p"
    swan = _imagenet_probabilities(model, frames / "blackswan" / "00010.jpg")
    assert int(swan.argmax()) == 100  # black swan
    assert float(swan[100]) == pytest.approx(0.87, abs=0.03)
    for frame in ("00010.jpg", "00030.jpg"):
        dog = _imagenet_probabilities(model, frames / "dog" / frame)
        assert 151 <= int(dog.argmax()) <= 268


@pytest.mark.parametrize("name, weights", [("efficientnet_lite0", "imagenet"), ("resnet50", "none")])
def test_pyramid_levels_have_the_documented_strides_and_channels(name, weights):
    backbone = build_backbone(name, weights, dilated=False).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        levels = backbone.pyramid(x)
        assert torch.equal(levels[-1], backbone.features(x))
    assert [level.shape[1] for level in levels] == list(backbone.pyramid_channels)
    assert [level.shape[-1] for level in levels] == [48, 24, 12, 6, 3]
