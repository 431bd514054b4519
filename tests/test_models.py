"""Backbones, stream and fusion networks, checkpoints."""

from __future__ import annotations

import functools

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
from fusionseg.models import efficientnet
from fusionseg.models.backbones import freeze_batchnorm, freeze_stages
from fusionseg.models.efficientnet import EfficientNetLite0, _spatial_conv
from fusionseg.models.layers import PhaseLayout, conv_bn, convolve
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


def _plain_stream_path(monkeypatch) -> None:
    """The stream model as it computed before the speed work: contiguous (NCHW) tensors, BatchNorm
    applied after each convolution, dilated convolutions on the map itself, four classifier convolutions."""
    monkeypatch.setattr(StreamModel, "memory_format", torch.contiguous_format)
    monkeypatch.setattr(efficientnet, "conv_bn", lambda conv, bn, x, on_phases=False: bn(conv(x)))
    monkeypatch.setattr(efficientnet, "_run_blocks", lambda blocks, x, dilation: functools.reduce(lambda y, b: b(y), blocks, x))
    monkeypatch.setattr(StreamModel, "classify", lambda self, f: sum(conv(f) for conv in self.classifiers))


# 37x45 gives 5x6 features, padded to phases of 2 and 4; 64x64 gives 8x8, not padded, where even
# training BatchNorm (weights none) runs on the phases. Training BatchNorm over 2 small images makes
# the early layers' gradients ill-conditioned (float32 alone moves them by 1%), so those cases
# compare in float64, where any difference is the computation's.
@pytest.mark.parametrize("weights, size, dtype", [
    ("imagenet", (37, 45), torch.float32),
    ("none", (64, 64), torch.float64),
    ("none", (37, 45), torch.float64),
])
def test_fast_stream_path_matches_the_plain_one(weights, size, dtype, monkeypatch):
    torch.manual_seed(0)
    fast = StreamModel("efficientnet_lite0", weights).train()
    for conv in fast.classifiers:  # larger than the initial weights, so that their gradients matter
        nn.init.normal_(conv.weight, std=0.01)
    assert fast.backbone._conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    fast.to(dtype)
    images = (torch.rand(2, 3, *size) * 255).to(dtype)
    target = torch.randint(0, 2, (2, *size))
    fast_out = fast(images)
    torch.nn.functional.cross_entropy(fast_out, target).backward()
    with monkeypatch.context() as patch:
        _plain_stream_path(patch)
        plain = StreamModel("efficientnet_lite0", "none").train()
        plain.load_state_dict(fast.state_dict())
        plain.to(dtype).train()
        if weights == "imagenet":
            freeze_batchnorm(plain.backbone)
        plain_out = plain(images)
        torch.nn.functional.cross_entropy(plain_out, target).backward()
    assert plain.backbone._conv_stem.weight.is_contiguous()
    tolerance = 1e-4 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(fast_out, plain_out, rtol=tolerance, atol=tolerance)
    fast_grads = {name: p.grad for name, p in fast.named_parameters() if p.grad is not None}
    plain_grads = {name: p.grad for name, p in plain.named_parameters() if p.grad is not None}
    assert fast_grads.keys() == plain_grads.keys() and len(fast_grads) > 50
    # Some gradients are rounding noise around zero (a bias before a training BatchNorm): compare them
    # all on the scale of the largest.
    scale = max(float(g.abs().max()) for g in plain_grads.values())
    for name, grad in fast_grads.items():
        torch.testing.assert_close(grad, plain_grads[name], rtol=10 * tolerance, atol=tolerance * scale, msg=name)


@pytest.mark.parametrize("kernel, stride, dilation, groups, channels_last", [
    (3, 2, 1, 1, False),  # the stem: TensorFlow "SAME" padding
    (5, 1, 4, 8, True),  # dilated depthwise
    (3, 1, 2, 8, False),
    (1, 1, 1, 1, True),
])
def test_folded_batchnorm_matches_convolution_then_batchnorm(kernel, stride, dilation, groups, channels_last):
    torch.manual_seed(0)
    conv = _spatial_conv(8, 8, kernel, stride, dilation, groups)
    bn = nn.BatchNorm2d(8, eps=1e-3)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
        bn.weight.normal_()
        bn.bias.normal_()
    bn.eval()
    x = torch.randn(2, 8, 13, 22)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    params = (x, conv.weight, bn.weight, bn.bias)
    folded = conv_bn(conv, bn, x)
    grads = torch.autograd.grad(folded.square().sum(), params)
    plain = bn(conv(x))
    expected = torch.autograd.grad(plain.square().sum(), params)
    torch.testing.assert_close(folded, plain, rtol=1e-4, atol=1e-5)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


@pytest.mark.parametrize("size", [(13, 22), (8, 8), (3, 5), (1, 1)])
def test_dilated_convolution_on_phases_matches_the_dilated_one(size):
    """A bias added on the phases (as a pointwise layer does) must not leak into the padding that
    rounds the map up to a multiple of the dilation: zero_padding clears it."""
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 6, 5, padding=8, dilation=4, groups=6, bias=True)
    x = torch.randn(2, 6, *size).contiguous(memory_format=torch.channels_last).requires_grad_()
    shift = torch.randn(1, 6, 1, 1)
    layout = PhaseLayout(x, 4)
    phases = layout.zero_padding(layout.split(x) + shift)
    out = layout.merge(convolve(conv, phases, conv.weight, conv.bias, on_phases=True))
    plain = conv(x + shift)
    assert out.shape == plain.shape
    torch.testing.assert_close(out, plain, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), (x, conv.weight))
    expected = torch.autograd.grad(plain.square().sum(), (x, conv.weight))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet50"])
def test_stages_cover_every_backbone_parameter_once(name):
    backbone = build_backbone(name, "none")
    listed = [id(p) for stage in backbone.stages() for module in stage for p in module.parameters()]
    assert len(listed) == len(set(listed)) == len(list(backbone.parameters()))
    assert len(backbone.stages()) == (9 if name == "efficientnet_lite0" else 5)


def test_frozen_stages_get_no_gradient_and_keep_batchnorm_statistics():
    model = StreamModel("efficientnet_lite0", "none")
    freeze_stages(model.backbone, 3)
    model.train()
    frozen = [m for stage in model.backbone.stages()[:3] for m in stage]
    free = [m for stage in model.backbone.stages()[3:] for m in stage]
    before = model.backbone._bn0.running_mean.clone()
    model(torch.rand(2, 3, 32, 32) * 255).sum().backward()
    assert all(p.grad is None and not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.grad is not None for m in free for p in m.parameters())
    assert torch.equal(model.backbone._bn0.running_mean, before) and not model.backbone._bn0.training
    assert model.backbone._blocks[3]._bn1.training
