"""SegFlow: shapes, losses, the exchange switch, training (tiny, exact resume), online fine-tuning,
the flow method, bad input and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from fusionseg.cli import main
from fusionseg.datasets.layout import Sequence
from fusionseg.datasets.synthetic import SynthParams, write_clip
from fusionseg.errors import ConfigError, InputError
from fusionseg.flow import read_flow_h5
from fusionseg.io.flo import write_flo
from fusionseg.flow.methods import make_backend
from fusionseg.flow.sequence import compute_sequence_flow, read_flow_attrs
from fusionseg.infer.probs import read_probs
from fusionseg.io import write_image, write_mask
from fusionseg.models import read_checkpoint, save_checkpoint
from fusionseg.segflow.data import AnnotatedPairs, FlowClips, FlowPairFolders, JointBatches
from fusionseg.segflow.infer import online_finetune
from fusionseg.segflow.losses import SCALE_WEIGHTS, balanced_cross_entropy, downsample_flow, multiscale_epe
from fusionseg.segflow.model import EXCHANGES, FLOW_SCALE, SegFlowNet, load_segflow
from fusionseg.config import section_params
from fusionseg.segflow.train import train_segflow
from fusionseg.train import loop
from fusionseg.train.data import ConcatSources

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HEIGHT, WIDTH = 48, 64
TINY = {"weights": "none", "flow_width": 4, "crop_size": 64, "seg_batch_size": 2, "flow_batch_size": 2, "scale_range": [1.0, 1.0]}


def _params(**overrides) -> dict:
    return section_params("segflow", {**TINY, "iterations": 4, "checkpoint_every": 2, "device": "cpu", **overrides})


def _net(exchange: str = "both") -> SegFlowNet:
    torch.manual_seed(0)
    return SegFlowNet("efficientnet_lite0", "none", exchange, flow_width=4).eval()


def _frames(batch: int = 1, height: int = HEIGHT, width: int = WIDTH, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(batch, 3, height, width, generator=generator) * 255 for _ in range(2))


@pytest.fixture
def clips(tmp_path):
    """Two synthetic clips (frames, masks, exact flow) in one DAVIS-layout root."""
    params = SynthParams(frames=4, height=HEIGHT, width=WIDTH, max_objects=1, seed=3)
    return [write_clip(tmp_path / "synth", name, params).frames_dir for name in ("a", "b")]


@pytest.mark.parametrize("size, backbone", [((64, 96), "efficientnet_lite0"), ((50, 70), "efficientnet_lite0"), ((50, 70), "resnet50")])
def test_outputs_and_flow_predictions_have_the_size_of_each_scale(size, backbone):
    torch.manual_seed(0)
    net = SegFlowNet(backbone, "none", "both", flow_width=4).eval()
    frame0, frame1 = _frames(2, *size)
    with torch.no_grad():
        output = net(frame0, frame1)
        predictions = net.estimate_flow(frame0, frame1)
    assert output.logits.shape == (2, 2, *size) and output.flow.shape == (2, 2, *size)
    expected = [(math.ceil(size[0] / s), math.ceil(size[1] / s)) for s in (64, 32, 16, 8, 4)]
    assert [tuple(p.shape[-2:]) for p in predictions] == expected
    assert all(p.shape[:2] == (2, 2) for p in predictions)
    assert torch.allclose(output.flow, F.interpolate(predictions[-1], size=size, mode="bilinear") * FLOW_SCALE)


def test_balanced_loss_weighs_each_class_by_the_other_ones_share():
    logits = torch.randn(1, 2, 4, 5, generator=torch.Generator().manual_seed(1))
    target = torch.zeros(1, 4, 5, dtype=torch.long)
    target[0, 0, :2] = 1  # 2 foreground pixels
    target[0, 3, :] = 255  # 5 ignored pixels, 13 background
    log_p = F.log_softmax(logits, dim=1)[0]
    fg, bg = target[0] == 1, target[0] == 0
    w = 2 / 15
    expected = (-(1 - w) * log_p[1][fg].sum() - w * log_p[0][bg].sum()) / ((1 - w) * 2 + w * 13)
    assert torch.isclose(balanced_cross_entropy(logits, target), expected)
    # the mean of the two classes' mean losses: a rare class counts as much as a frequent one
    assert torch.isclose(expected, (-log_p[1][fg].mean() - log_p[0][bg].mean()) / 2)
    # one class only: nothing to balance, plain cross-entropy over the labelled pixels
    background = torch.where(target == 1, torch.zeros_like(target), target)
    assert torch.isclose(balanced_cross_entropy(logits, background), F.cross_entropy(logits, background, ignore_index=255))


def test_multiscale_epe_compares_each_scale_with_the_downsampled_ground_truth():
    flow = torch.randn(2, 2, 64, 64, generator=torch.Generator().manual_seed(2)) * 5
    valid = torch.ones(2, 64, 64, dtype=torch.bool)
    sizes = [(1, 1), (2, 2), (4, 4), (8, 8), (16, 16)]
    exact = [downsample_flow(flow, valid, size)[0] / FLOW_SCALE for size in sizes]
    assert multiscale_epe(exact, flow, valid) < 1e-5
    shifted = [p + torch.tensor([3.0, 4.0]).view(1, 2, 1, 1) / FLOW_SCALE for p in exact]  # 5 px off everywhere
    assert torch.isclose(multiscale_epe(shifted, flow, valid), torch.tensor(5 * sum(SCALE_WEIGHTS)), atol=1e-4)
    # invalid pixels neither count nor leak into the coarse ground truth
    corrupted, half = flow.clone(), valid.clone()
    corrupted[:, :, :, 32:], half[:, :, 32:] = 1e6, False
    coarse, coarse_valid = downsample_flow(corrupted, half, (16, 16))
    assert coarse_valid[:, :, :8].all() and not coarse_valid[:, :, 8:].any()
    assert torch.allclose(coarse[..., :8], exact[-1][..., :8] * FLOW_SCALE, atol=1e-4)


def _perturbed(net: SegFlowNet, prefix: str) -> SegFlowNet:
    changed = SegFlowNet("efficientnet_lite0", "none", net.arch["exchange"], 4).eval()
    changed.load_state_dict(net.state_dict())
    with torch.no_grad():
        for name, param in changed.named_parameters():
            if name.startswith(prefix):
                param.add_(torch.randn_like(param) * 0.5)
    return changed


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_exchange_switch_removes_the_other_branchs_features(exchange):
    net = _net(exchange)
    seg_to_flow, flow_to_seg = exchange in ("both", "seg_to_flow"), exchange in ("both", "flow_to_seg")
    names = [name for name, _ in net.named_parameters()]
    assert any(".seg_adapters." in n for n in names) == seg_to_flow
    assert any(".flow_adapters." in n for n in names) == flow_to_seg
    frames = _frames()
    with torch.no_grad():
        reference = net(*frames)
        new_backbone = _perturbed(net, "backbone.")(*frames)
        new_flow_branch = _perturbed(net, "flow_")(*frames)
    # the flow depends on the segmentation backbone only through seg_to_flow, and vice versa
    assert (not torch.allclose(reference.flow, new_backbone.flow)) == seg_to_flow
    assert (not torch.allclose(reference.logits, new_flow_branch.logits)) == flow_to_seg
    assert not torch.allclose(reference.logits, new_backbone.logits)
    assert not torch.allclose(reference.flow, new_flow_branch.flow)


def test_joint_batches_alternate_and_depend_only_on_seed_and_iteration(clips):
    params = _params(seg_steps=2, flow_steps=1, scale_range=[0.8, 1.2])
    batches = JointBatches(AnnotatedPairs(clips), FlowClips(clips), params)
    assert [batches.task(i) for i in range(6)] == ["seg", "seg", "flow"] * 2
    (frame0, frame1, target), same = batches(0)
    assert frame0.shape == frame1.shape == (2, 3, 64, 64) and target.shape == (2, 64, 64) and target is same
    assert set(target.unique().tolist()) <= {0, 1, 255}
    (_, _, flow), _ = batches(2)
    assert flow.shape == (2, 3, 64, 64) and set(flow[:, 2].unique().tolist()) <= {0.0, 1.0}
    again = batches(2)[0]
    assert all(torch.equal(a, b) for a, b in zip(batches(2)[0], again))
    assert not torch.equal(batches(5)[0][2], flow)


def test_flow_augmentation_keeps_the_flow_exact(clips):
    """A flipped, rescaled crop of a synthetic pair still carries that pair's exact flow."""
    source = FlowClips(clips[:1])
    params = _params(scale_range=[2.0, 2.0], hflip=True, crop_size=64)
    batches = JointBatches(None, source, params)
    for iteration in [i for i in range(8) if batches.task(i) == "flow"]:
        (crop0, crop1, target), _ = batches(iteration)
        for index in range(2):
            # warping frame t+1 back with the target flow reproduces frame t where the flow is valid
            warped = _backward_warp(crop1[index], target[index, :2])
            inside = (target[index, 2] > 0) & _lands_inside(target[index, :2])
            error = (warped - crop0[index]).abs().mean(dim=0)[inside]
            assert error.mean() < 25, error.mean()


def _backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    height, width = flow.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    grid = torch.stack([(xs + flow[0]) / (width - 1) * 2 - 1, (ys + flow[1]) / (height - 1) * 2 - 1], dim=-1)
    return F.grid_sample(image[None], grid[None], align_corners=True)[0]


def _lands_inside(flow: torch.Tensor) -> torch.Tensor:
    height, width = flow.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    x, y = xs + flow[0], ys + flow[1]
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def test_tiny_training_on_a_synthetic_clip_learns_both_tasks(clips, tmp_path):
    params = _params(iterations=80, lr=0.001, checkpoint_every=100, hflip=False, flow_steps=3, **{"lambda": 1.0})
    flow_source = FlowClips(clips)
    train_segflow(AnnotatedPairs(clips), flow_source, params, tmp_path / "m.pt")
    log = pd.read_csv(tmp_path / "m.pt.log.csv")
    assert log["iteration"].tolist() == list(range(1, params['iterations'] + 1))
    seg = log["loss"][0::4].to_numpy()
    assert seg[-5:].mean() < 0.6 * seg[:3].mean(), seg
    net = load_segflow(tmp_path / "m.pt")
    errors, motion = [], []
    for frame0, frame1, flow, _ in (flow_source[i] for i in range(len(flow_source))):
        with torch.no_grad():
            predicted = net.flow(*(torch.from_numpy(f).permute(2, 0, 1)[None].float() for f in (frame0, frame1)))
        errors.append(np.linalg.norm(predicted[0].permute(1, 2, 0).numpy() - flow, axis=2).mean())
        motion.append(np.linalg.norm(flow, axis=2).mean())
    assert np.mean(errors) < 0.9 * np.mean(motion), (errors, motion)  # better than "nothing moves"
    payload = read_checkpoint(tmp_path / "m.pt")
    assert payload["arch"] == {"kind": "segflow", "backbone": "efficientnet_lite0", "exchange": "both", "flow_width": 4}
    assert payload["config"] == params and payload["iteration"] == params['iterations']


def test_resume_gives_exactly_the_uninterrupted_weights(clips, tmp_path, monkeypatch):
    params = _params(iterations=5, checkpoint_every=2)
    segmentation, flow = AnnotatedPairs(clips), FlowClips(clips)
    train_segflow(segmentation, flow, params, tmp_path / "whole.pt")
    original_step = loop.Trainer._step

    def interrupted(self, iteration, *args):
        if iteration == 3:
            raise KeyboardInterrupt
        return original_step(self, iteration, *args)

    monkeypatch.setattr(loop.Trainer, "_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_segflow(segmentation, flow, params, tmp_path / "split.pt")
    assert not (tmp_path / "split.pt").exists() and (tmp_path / "split.pt.resume.pt").exists()
    monkeypatch.setattr(loop.Trainer, "_step", original_step)
    train_segflow(segmentation, flow, params, tmp_path / "split.pt")
    whole, split = read_checkpoint(tmp_path / "whole.pt"), read_checkpoint(tmp_path / "split.pt")
    assert whole["iteration"] == split["iteration"] == 5
    for key, value in whole["model"].items():
        assert torch.equal(value, split["model"][key]), key
    assert pd.read_csv(tmp_path / "split.pt.log.csv")["loss"].tolist() == pd.read_csv(tmp_path / "whole.pt.log.csv")["loss"].tolist()


def test_online_finetuning_changes_only_a_copy_and_reads_only_the_first_annotated_frame(clips):
    sequence = Sequence.from_frames_dir(clips[0])
    for index in (0, 3):
        (sequence.masks_dir / f"{index:05d}.png").unlink()
    (sequence.masks_dir / "00002.png").write_bytes(b"not a png")  # a later mask must never be read
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    tuned = online_finetune(net, sequence, 3, _params(online_lr=0.01))
    assert tuned is not net and not tuned.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    after = tuned.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("seg_head.") for k in changed) and any(k.startswith("backbone.") for k in changed)
    assert not any(k.startswith("flow_") for k in changed)  # the flow branch stays fixed
    for path in sequence.masks_dir.iterdir():
        path.unlink()
    with pytest.raises(InputError, match="no annotated frame"):
        online_finetune(net, sequence, 1, _params())


def _checkpoint(tmp_path, exchange: str = "both"):
    path = tmp_path / "segflow.pt"
    save_checkpoint(path, _net(exchange), _params(exchange=exchange), 0)
    return path


def test_flow_method_runs_the_flow_branch_through_make_backend(clips, tmp_path):
    model = _checkpoint(tmp_path)
    frame0, frame1 = (np.asarray(Sequence.from_frames_dir(clips[0]).read_frame(i)) for i in (0, 1))
    grey0, grey1 = (np.dot(f.astype(np.float32), [0.299, 0.587, 0.114]).round().astype(np.uint8) for f in (frame0, frame1))
    flow = make_backend("segflow", {"model": str(model)}, "cpu")([grey0], [grey1])
    expected = load_segflow(model).flow(*(torch.from_numpy(g).float().expand(1, 3, -1, -1) for g in (grey0, grey1)))
    assert flow.shape == (1, HEIGHT, WIDTH, 2) and flow.dtype == np.float32
    assert np.allclose(flow[0], expected[0].permute(1, 2, 0).detach().numpy(), atol=1e-5)
    compute_sequence_flow(clips[0], tmp_path / "a.h5", "segflow", {"model": str(model)}, device="cpu")
    assert read_flow_h5(tmp_path / "a.h5").shape == (4, HEIGHT, WIDTH, 2)
    assert read_flow_attrs(tmp_path / "a.h5")["method"] == "segflow"
    with pytest.raises(ConfigError, match="flow.segflow.model"):
        make_backend("segflow", {}, "cpu")
    with pytest.raises(ConfigError, match="modle"):
        make_backend("segflow", {"modle": str(model)}, "cpu")


def test_flow_method_segflow_is_registered_by_the_segflow_package():
    """The flow stage never imports SegFlow: importing fusionseg.segflow registers the method, and
    without it the flow stage says which package provides it."""
    code = (
        "from fusionseg.errors import ConfigError\n"
        "from fusionseg.flow.methods import make_backend\n"
        "try:\n    make_backend('segflow', {'model': 'segflow.pt'}, 'cpu')\n"
        "except ConfigError as exc:\n    print(exc)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "import fusionseg.segflow" in run.stdout


def test_bad_input_is_named(clips, tmp_path):
    with pytest.raises(ConfigError, match="segflow.exchange"):
        section_params("segflow", {"exchange": "sideways"})
    with pytest.raises(ConfigError, match="lamda"):
        section_params("segflow", '{"lamda": 1}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        section_params("segflow", "{iterations: 3}")
    sequence = Sequence.from_frames_dir(clips[1])
    (sequence.flow_dir / "00002.flo").unlink()
    with pytest.raises(InputError, match=r"Flow/b.*00002\.flo"):
        FlowClips([clips[1]])
    bare = tmp_path / "bare" / "JPEGImages" / "480p" / "s"
    for i in range(2):
        write_image(bare / f"{i:05d}.jpg", np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    with pytest.raises(InputError, match="no annotated frames"):
        AnnotatedPairs([bare])
    write_mask(tmp_path / "bare" / "Annotations" / "480p" / "s" / "00000.png", np.zeros((10, 10), bool))
    with pytest.raises(InputError, match=r"00000\.png: is 10x10"):
        AnnotatedPairs([bare])[0]
    with pytest.raises(InputError, match="FlyingChairs naming"):
        FlowPairFolders([bare])
    with pytest.raises(InputError, match="no flow training data"):
        ConcatSources([FlowPairFolders([])], "flow training data")
    stream = tmp_path / "stream.pt"
    from fusionseg.models import StreamModel

    save_checkpoint(stream, StreamModel("efficientnet_lite0", "none"), {}, 0)
    with pytest.raises(InputError, match="expected a segflow model"):
        load_segflow(stream)


def test_flow_pair_folders_read_flyingchairs_naming(tmp_path):
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(HEIGHT, WIDTH, 2)).astype(np.float32)
    flow[0, 0] = 1e10  # unknown flow
    for tag in ("img0", "img1"):
        write_image(tmp_path / f"0001-{tag}.png", rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8))
    write_flo(tmp_path / "0001-gt.flo", flow)
    frame0, frame1, read, valid = FlowPairFolders([tmp_path])[0]
    assert frame0.shape == frame1.shape == (HEIGHT, WIDTH, 3)
    assert not valid[0, 0] and valid.sum() == HEIGHT * WIDTH - 1 and read[0, 0].tolist() == [0, 0]
    assert np.array_equal(read[valid], flow[valid])


def test_cli_trains_and_infers_with_flow_and_online_mode(clips, tmp_path, capsys):
    out = tmp_path / "segflow.pt"
    params = json.dumps({**TINY, "iterations": 2})
    args = ["train-segflow", "--frames", str(clips[0]), "--flow-frames", *map(str, clips), "--out", str(out), "--params", params, "--threads", "1", "--device", "cpu"]
    assert main(args) == 0
    assert read_checkpoint(out)["arch"]["kind"] == "segflow"
    probs, flow = tmp_path / "p.h5", tmp_path / "f.h5"
    args = ["infer-segflow", "--model", str(out), "--frames", str(clips[1]), "--out", str(probs), "--flow-out", str(flow), "--online-iterations", "2", "--threads", "1"]
    assert main(args) == 0
    assert read_probs(probs).shape == (4, HEIGHT, WIDTH)
    assert read_flow_h5(flow).shape == (4, HEIGHT, WIDTH, 2)
    assert read_flow_attrs(flow)["convention"] == "forward i->i+1; last frame i->i-1"
    assert main(["train-segflow", "--frames", str(clips[0]), "--flow-frames", str(clips[0]), "--out", str(out), "--params", '{"iters": 2}']) == 2
    assert "iters" in capsys.readouterr().err
    one = tmp_path / "one" / "JPEGImages" / "480p" / "s"
    write_image(one / "00000.jpg", np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    assert main(["infer-segflow", "--model", str(out), "--frames", str(one), "--out", str(tmp_path / "x.h5")]) == 2
    assert "only 1 frame" in capsys.readouterr().err and not (tmp_path / "x.h5").exists()
