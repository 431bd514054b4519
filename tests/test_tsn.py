"""TSN: affinity, dynamic heads, soft aggregation, training clips, exact resume, inference, bad input, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from fusionseg.cli import main
from fusionseg.datasets.raw import MaskSource, RawSequence
from fusionseg.datasets.synthetic import SynthParams, render_clip, write_clip
from fusionseg.datasets.writer import write_sequence
from fusionseg.errors import ConfigError, InputError
from fusionseg.infer.probs import read_object_ids, read_probs, read_probs_attrs, write_probs
from fusionseg.io import write_image, write_labels, write_mask
from fusionseg.models.checkpoint import read_checkpoint, save_checkpoint
from fusionseg.models.fusion import FusionModel
from fusionseg.train import loop
from fusionseg.train.data import IGNORE
from fusionseg.tsn.data import ClipMix, StillClips, VideoClips, _frame_positions, clip_batch, object_ids
from fusionseg.tsn.infer import choose_seed_frame, infer_tsn, load_tsn
from fusionseg.tsn.memory import Memory, affinity, aggregate
from fusionseg.tsn.model import HEAD_PARAMS, TSNModel, dynamic_head, mask_centroids, relative_coordinates, tsn_arch
from fusionseg.tsn.train import (
    bootstrapped_bce, hard_pixel_share, max_frame_gap, pretrain_path, soft_iou_loss, train_tsn, tsn_params,
)  # fmt: skip

# Tiny models run fastest on one thread, above all on a machine shared with other jobs.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {
    "weights": "none", "key_channels": 8, "value_channels": 16, "decoder_channels": [16, 8, 8], "kernel_dim": 8,
    "pretrain_iterations": 2, "iterations": 3, "batch_size": 2, "crop_size": 32, "synthetic_clips": 1,
    "checkpoint_every": 1, "device": "cpu",
}  # fmt: skip
CLIP = SynthParams(frames=6, height=40, width=48, max_objects=3, seed=3)


def _params(**overrides) -> dict:
    return tsn_params(json.dumps({**TINY, **overrides}))


def _model(streams: str = "both") -> TSNModel:
    torch.manual_seed(0)
    return TSNModel(tsn_arch(_params(streams=streams))).eval()


def _multi_object_clip(root, params: SynthParams = CLIP):
    """A synthetic clip whose first frame shows at least two objects, written with object ids."""
    for index in range(50):
        name = f"clip{index:03d}"
        if len(object_ids(render_clip(name, params).layers[0])) >= 2:
            return write_clip(root, name, params, merge_objects=False).frames_dir
    raise AssertionError("no multi-object synthetic clip among 50 names")


# --- the network's parts --------------------------------------------------------------------------


def test_affinity_is_a_softmax_over_memory_of_negative_squared_distance():
    generator = torch.Generator().manual_seed(0)
    memory, query = torch.randn(2, 6, 30, generator=generator), torch.randn(2, 6, 7, generator=generator)
    distance = (query.unsqueeze(2) - memory.unsqueeze(3)).pow(2).sum(1)  # (2, memory 30, query 7)
    expected = (-distance / math.sqrt(6)).softmax(dim=1)
    assert torch.allclose(affinity(memory, query), expected, atol=1e-6)

    top = affinity(memory, query, top_k=4)
    assert torch.allclose(top.sum(1), torch.ones(2, 7))
    assert ((top > 0).sum(1) == 4).all()
    nearest = distance.topk(4, dim=1, largest=False).indices
    kept = torch.gather(-distance / math.sqrt(6), 1, nearest).softmax(dim=1)
    assert torch.allclose(torch.gather(top, 1, nearest), kept, atol=1e-6)
    assert torch.allclose(affinity(memory, query, top_k=30), expected, atol=1e-6)


def test_dynamic_head_has_232_parameters_and_runs_three_1x1_convolutions():
    assert HEAD_PARAMS == (10 * 8 + 8) + (8 * 8 + 8) + (8 * 8 + 8) == 232
    generator = torch.Generator().manual_seed(1)
    inputs, params = torch.randn(2, 10, 5, 6, generator=generator), torch.randn(2, HEAD_PARAMS, generator=generator)
    for sample in range(2):
        p, x = params[sample], inputs[sample : sample + 1]
        w1, b1 = p[:80].view(8, 10, 1, 1), p[80:88]
        w2, b2 = p[88:152].view(8, 8, 1, 1), p[152:160]
        w3, b3 = p[160:224].view(8, 8, 1, 1), p[224:232]
        expected = F.conv2d(F.relu(F.conv2d(F.relu(F.conv2d(x, w1, b1)), w2, b2)), w3, b3)
        assert torch.allclose(dynamic_head(inputs, params)[sample : sample + 1], expected, atol=1e-5)


def test_relative_coordinates_are_centred_on_the_mask_centroid():
    mask = torch.zeros(2, 1, 6, 8)
    mask[0, 0, 1:4, 2:5] = 1  # centre x 3, y 2
    centroids, present = mask_centroids(mask)
    assert torch.allclose(centroids[0], torch.tensor([3.0, 2.0]))
    assert present.tolist() == [1.0, 0.0]  # the empty mask holds no object
    coords = relative_coordinates(centroids, 6, 8)
    assert coords.shape == (2, 2, 6, 8)
    assert torch.allclose(coords[0, :, 2, 3], torch.zeros(2))
    assert torch.allclose(coords[0, :, 0, 7], torch.tensor([4 / 8, -2 / 6]))


def test_soft_aggregation_makes_objects_compete_and_sum_to_one():
    probs = torch.tensor([[0.9, 0.2, 0.9], [0.8, 0.1, 0.05]])  # two objects, three pixels
    merged = aggregate(probs)
    assert merged.shape == (3, 3)
    assert torch.allclose(merged.sum(0), torch.ones(3))
    assert merged[:, 0].argmax() == 1 and merged[1, 0] < 0.9  # both claim pixel 0: the stronger wins, less sure
    assert merged[:, 1].argmax() == 0  # neither claims pixel 1: background
    single = aggregate(torch.tensor([[0.3, 0.7]]))  # odds against odds: p^2 / (p^2 + (1 - p)^2)
    sharpened = 0.49 / (0.49 + 0.09)
    assert torch.allclose(single, torch.tensor([[sharpened, 1 - sharpened], [1 - sharpened, sharpened]]), atol=1e-5)


def test_model_shapes_for_both_streams_and_the_pixel_ablation():
    frames = torch.rand(2, 3, 3, 32, 48) * 255
    first = torch.zeros(2, 1, 32, 48)
    first[:, :, 8:20, 10:30] = 1
    both, pixel = _model("both"), _model("pixel")
    assert both(frames, first).shape == pixel(frames, first).shape == (2, 2, 32, 48)
    assert pixel.instance is None and pixel.routing is None
    assert not any(name.startswith(("instance.", "routing.")) for name in pixel.state_dict())

    with torch.no_grad():
        query = both.encode_keys(frames[0, :1])
        memory = Memory()
        both.memorise(memory, frames[0, :1], query, torch.stack([first[0], 1 - first[0]]))  # two objects
        logits, routing = both.segment(both.encode_keys(frames[0, 1:2]), memory, (32, 48))
    assert logits.shape == (2, 1, 32, 48)
    assert routing.shape == (1, 1, 2, 3) and ((routing > 0) & (routing < 1)).all()  # stride 16


# --- training ---------------------------------------------------------------------------------------


def test_params_fill_defaults_and_name_bad_keys():
    params = tsn_params(None)
    assert params["streams"] == "both" and params["top_k"] == 20 and params["frames_per_clip"] == 3
    with pytest.raises(ConfigError, match="iters"):
        tsn_params('{"iters": 3}')
    with pytest.raises(ConfigError, match="streams"):
        tsn_params('{"streams": "instance"}')
    with pytest.raises(ConfigError, match="max_frame_gaps"):
        tsn_params('{"max_frame_gaps": [5, 10]}')


def test_schedules_grow_then_shrink_the_gap_and_harden_the_loss():
    params = tsn_params(None)
    gaps = [max_frame_gap(params, p) for p in (0.0, 0.15, 0.5, 0.9)]
    assert gaps == [5, 10, 15, 5]
    assert hard_pixel_share(params, 0.1) == 1.0 and hard_pixel_share(params, 0.9) == params["hard_pixel_fraction"]
    assert 0.15 < hard_pixel_share(params, 0.35) < 1.0


def test_bootstrapped_loss_keeps_the_hardest_pixels_and_iou_loss_ignores_void():
    logits = torch.tensor([[[[4.0, -4.0, 0.0, 9.0]]]])
    target = torch.tensor([[[[1, 1, 0, IGNORE]]]])
    every = F.binary_cross_entropy_with_logits(logits[0, 0, 0, :3], torch.tensor([1.0, 1.0, 0.0]))
    assert torch.isclose(bootstrapped_bce(logits, target, 1.0), every)
    hardest = F.binary_cross_entropy_with_logits(torch.tensor(-4.0), torch.tensor(1.0))
    assert torch.isclose(bootstrapped_bce(logits, target, 0.34), hardest)
    perfect = torch.tensor([[[[20.0, 20.0, -20.0, -20.0]]]])
    assert soft_iou_loss(perfect, target) < 1e-3


def test_frame_positions_are_distinct_within_the_gap_and_in_range():
    generator = torch.Generator().manual_seed(0)
    for length, gap in ((3, 10), (10, 1), (40, 5)):
        for _ in range(20):
            positions = _frame_positions(length, 3, gap, generator)
            steps = np.abs(np.diff(positions))
            assert len(set(positions)) == 3 and min(positions) >= 0 and max(positions) < length
            assert (steps >= 1).all() and (steps <= gap).all()


def test_clip_batches_depend_only_on_the_iteration_and_hold_the_target(tmp_path):
    frames_dir = _multi_object_clip(tmp_path)
    params = _params()
    mix = ClipMix([VideoClips.from_frames_dirs([frames_dir], 3)])
    (frames, first), targets = clip_batch(mix, params, 7, 2)
    assert frames.shape == (2, 3, 3, 32, 32) and first.shape == (2, 1, 32, 32) and targets.shape == (2, 2, 32, 32)
    assert (first.flatten(1).sum(1) > 0).all()  # the target object is in every first frame
    assert set(targets.unique().tolist()) <= {0, 1, IGNORE}
    (again, _), _ = clip_batch(mix, params, 7, 2)
    (other, _), _ = clip_batch(mix, params, 8, 2)
    assert torch.equal(frames, again) and not torch.equal(frames, other)


def test_still_images_become_clips_of_warped_copies():
    image = np.full((40, 40, 3), 50, np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 12:28] = 1
    image[mask == 1] = 200
    frames, labels = StillClips([(image, mask)]).clip(0, 3, 5, torch.Generator().manual_seed(0))
    assert frames.shape == (3, 40, 40, 3) and labels.shape == (3, 40, 40)
    assert not np.array_equal(labels[0], labels[1])
    assert ((frames[..., 0] == 200) == (labels == 1)).mean() > 0.95  # the mask moves with the image


def test_resume_gives_exactly_the_uninterrupted_weights(tmp_path, monkeypatch):
    frames_dir = _multi_object_clip(tmp_path)
    params = _params(pretrain_iterations=2, iterations=4)
    train_tsn([frames_dir], [], params, tmp_path / "whole.pt")

    original_step = loop.Trainer._step

    def interrupted(self, iteration, *args):
        if self.out.name == "split.pt" and iteration == 2:
            raise KeyboardInterrupt
        return original_step(self, iteration, *args)

    monkeypatch.setattr(loop.Trainer, "_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_tsn([frames_dir], [], params, tmp_path / "split.pt")
    assert pretrain_path(tmp_path / "split.pt").is_file() and not (tmp_path / "split.pt").exists()
    monkeypatch.setattr(loop.Trainer, "_step", original_step)
    train_tsn([frames_dir], [], params, tmp_path / "split.pt")

    whole, split = read_checkpoint(tmp_path / "whole.pt"), read_checkpoint(tmp_path / "split.pt")
    assert whole["iteration"] == split["iteration"] == 4
    for key, value in whole["model"].items():
        assert torch.equal(value, split["model"][key]), key
    losses = pd.read_csv(tmp_path / "split.pt.log.csv")["loss"]
    assert losses.tolist() == pd.read_csv(tmp_path / "whole.pt.log.csv")["loss"].tolist()
    assert split["arch"] == {**tsn_arch(params)} and split["arch"]["kind"] == "tsn"


def test_frozen_backbones_train_only_the_new_layers(tmp_path):
    frames_dir = _multi_object_clip(tmp_path)
    params = _params(pretrain_iterations=0, iterations=2, backbone_lr_scale=0)
    torch.manual_seed(params["seed"])
    before = TSNModel(tsn_arch(params)).state_dict()
    train_tsn([frames_dir], [], params, tmp_path / "frozen.pt")
    after = read_checkpoint(tmp_path / "frozen.pt")["model"]
    assert torch.equal(before["key_encoder.backbone._blocks.3._project_conv.weight"], after["key_encoder.backbone._blocks.3._project_conv.weight"])
    assert not torch.equal(before["value_encoder.backbone._conv_stem.weight"], after["value_encoder.backbone._conv_stem.weight"])
    assert not torch.equal(before["decoder.pred.weight"], after["decoder.pred.weight"])


# --- inference ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny TSN trained a few iterations on a multi-object synthetic clip, and that clip."""
    root = tmp_path_factory.mktemp("tsn")
    frames_dir = _multi_object_clip(root)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    train_tsn([frames_dir], [], _params(), root / "tsn.pt")
    torch.set_num_threads(threads)
    return root / "tsn.pt", frames_dir


def test_multi_object_clip_end_to_end(trained, tmp_path):
    model_path, frames_dir = trained
    infer_tsn(model_path, frames_dir, tmp_path / "probs.h5", routing_out=tmp_path / "routing.h5")
    first = np.asarray(render_clip(frames_dir.name, CLIP).layers[0])
    ids = object_ids(first)
    probs = read_probs(tmp_path / "probs.h5")
    assert read_object_ids(tmp_path / "probs.h5") == ids
    assert probs.shape == (CLIP.frames, len(ids), CLIP.height, CLIP.width)
    assert (probs >= 0).all() and (probs.sum(axis=1) <= 1.01).all()
    for k, object_id in enumerate(ids):  # the given frame is the ground truth itself
        assert np.array_equal(probs[0, k] > 0.5, first == object_id)
    attrs = read_probs_attrs(tmp_path / "probs.h5")
    assert attrs["method"] == "tsn" and attrs["seed_frame"] == "0" and "ground truth" in attrs["seed_source"]
    routing = read_probs(tmp_path / "routing.h5")
    assert routing.shape == (CLIP.frames, 3, 3)  # stride 16 of 40x48
    assert ((routing > 0) & (routing < 1)).all()


SQUARE = 12  # side of the tracked square, pixels


def _square_clip(root, name: str, start: tuple[int, int], step: tuple[int, int], annotated, frames: int = 8):
    """A yellow square moving `step` (dy, dx) pixels a frame over a fixed noise background (48x64);
    masks of the `annotated` frames only. Returns the frames folder and the square's true centroids."""
    background = (np.random.default_rng(len(name)).random((48, 64, 3)) * 100).astype(np.uint8)
    images, masks, centroids = [], {}, []
    for index in range(frames):
        y, x = start[0] + step[0] * index, start[1] + step[1] * index
        image, mask = background.copy(), np.zeros((48, 64), bool)
        image[y : y + SQUARE, x : x + SQUARE] = (230, 200, 40)
        mask[y : y + SQUARE, x : x + SQUARE] = True
        images.append(image)
        centroids.append((y + (SQUARE - 1) / 2, x + (SQUARE - 1) / 2))
        if index in annotated:
            write_mask(root / "masks" / name / f"{index}.png", mask)
            masks[index] = MaskSource([root / "masks" / name / f"{index}.png"])
    raw = RawSequence(name, lambda: ((f"f{i}", image) for i, image in enumerate(images)), masks)
    return write_sequence(raw, root / "frames").frames_dir, np.array(centroids)


def test_tsn_tracks_a_moving_square_from_the_first_frame_mask(tmp_path):
    """Trained briefly on two clips of a moving square, TSN given only the first frame's mask of a
    third clip (another start, another direction) follows the square: each frame's predicted mask
    is centred on it, 42 pixels from where it started by the last frame."""
    train = [_square_clip(tmp_path, f"train{k}", (4 + 6 * k, 4), (3, 5 - k), range(8))[0] for k in range(2)]
    test, truth = _square_clip(tmp_path, "test", (30, 6), (-3, 6), [0])
    params = _params(pretrain_iterations=0, iterations=50, lr=1e-3, crop_size=48, synthetic_clips=0, checkpoint_every=1000)
    train_tsn(train, [], params, tmp_path / "tsn.pt")
    infer_tsn(tmp_path / "tsn.pt", test, tmp_path / "probs.h5")
    probs = read_probs(tmp_path / "probs.h5")
    assert probs.shape == (8, 48, 64)
    for index in range(1, 8):
        ys, xs = np.nonzero(probs[index] > 0.5)
        assert 0.1 * SQUARE**2 < len(ys) < 3 * SQUARE**2, f"frame {index}: {len(ys)} foreground pixels"
        centroid = np.array([ys.mean(), xs.mean()])
        assert np.abs(centroid - truth[index]).max() < 4, f"frame {index}: centroid {centroid}, square at {truth[index]}"
    assert np.hypot(*(truth[-1] - truth[0])) > 40  # a mask that stayed put would be far off


def test_automatic_seed_from_probabilities_propagates_both_ways(trained, tmp_path):
    model_path, frames_dir = trained
    count, height, width = CLIP.frames, CLIP.height, CLIP.width
    seed = np.zeros((count, height, width), np.float32)
    seed[:, 10:30, 12:36] = 0.6
    seed[3, 10:30, 12:36] = 0.99  # the most confident frame, as stable as its neighbours
    write_probs(tmp_path / "joint.h5", [seed], count, (height, width), "joint", "0")
    [used] = infer_tsn(model_path, frames_dir, tmp_path / "probs.h5", seed_probs=tmp_path / "joint.h5")
    assert used.frame == 3
    probs = read_probs(tmp_path / "probs.h5")
    assert probs.shape == (count, height, width) and read_object_ids(tmp_path / "probs.h5") is None
    assert np.array_equal(probs[3] > 0.5, seed[3] > 0.5)
    assert read_probs_attrs(tmp_path / "probs.h5")["seed_frame"] == "3"


def test_anchored_propagation_starts_from_several_spread_frames(trained, tmp_path):
    """With anchors, the memory starts with the most trustworthy frames, spread over the clip, and
    every frame (the anchors too) is predicted in one pass."""
    model_path, frames_dir = trained
    count, height, width = CLIP.frames, CLIP.height, CLIP.width
    seed = np.zeros((count, height, width), np.float32)
    seed[:, 10:30, 12:36] = 0.6
    seed[[1, 2], 10:30, 12:36] = 0.99  # neighbours: only one of them may be an anchor
    seed[count - 1, 10:30, 12:36] = 0.95
    write_probs(tmp_path / "joint.h5", [seed], count, (height, width), "joint", "0")
    used = infer_tsn(model_path, frames_dir, tmp_path / "probs.h5", seed_probs=tmp_path / "joint.h5", anchors=2)
    frames = [s.frame for s in used]
    assert len(frames) == 2 and frames[0] in (1, 2) and frames[1] >= frames[0] + count // 4
    assert read_probs_attrs(tmp_path / "probs.h5")["seed_frame"] == ",".join(map(str, frames))
    assert read_probs(tmp_path / "probs.h5").shape == (count, height, width)


def test_choose_seed_frames_spreads_anchors():
    from fusionseg.tsn.infer import choose_seed_frames

    probs = np.full((20, 8, 8), 0.7, np.float32)
    probs[[4, 5, 6], :, :] = 0.99
    assert choose_seed_frames(probs, 1) == [4]
    frames = choose_seed_frames(probs, 3)
    assert 4 in frames and len(frames) == 3 and all(b - a >= 20 // 6 for a, b in zip(frames, frames[1:]))


def test_seed_probabilities_without_any_object_give_all_background(trained, tmp_path):
    model_path, frames_dir = trained
    count, height, width = CLIP.frames, CLIP.height, CLIP.width
    write_probs(tmp_path / "joint.h5", [np.zeros((count, height, width), np.float32)], count, (height, width), "joint", "0")
    [used] = infer_tsn(model_path, frames_dir, tmp_path / "probs.h5", seed_probs=tmp_path / "joint.h5")
    assert used.object_ids == [] and used.frame == -1
    assert not read_probs(tmp_path / "probs.h5").any()
    assert read_probs_attrs(tmp_path / "probs.h5")["seed_source"].startswith("none: ")


def test_checkpoint_records_the_data_it_was_trained_on(trained):
    model_path, frames_dir = trained
    identity = read_checkpoint(model_path)["data_identity"]
    assert set(identity) == {str(frames_dir), str(frames_dir.parents[2] / "Annotations" / "480p" / frames_dir.name)}


def test_seed_frame_rule_prefers_confident_stable_masks_and_skips_empty_ones():
    probs = np.full((5, 10, 10), 0.02, np.float32)
    probs[1:4, 2:8, 2:8] = 0.7
    probs[2, 2:8, 2:8] = 0.95
    assert choose_seed_frame(probs) == 2
    flicker = probs.copy()
    flicker[0, :, :] = 0.99  # confident but unlike its neighbour
    assert choose_seed_frame(flicker) == 2
    with pytest.raises(InputError, match="no frame has foreground"):
        choose_seed_frame(np.zeros((3, 10, 10), np.float32), "joint.h5")


def test_missing_first_frame_mask_is_an_error_naming_the_folder(trained, tmp_path):
    model_path, _ = trained
    frames_dir = tmp_path / "root" / "JPEGImages" / "480p" / "bare"
    for index in range(3):
        write_image(frames_dir / f"{index:05d}.jpg", np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InputError, match="Annotations/480p/bare: no annotated frame"):
        infer_tsn(model_path, frames_dir, tmp_path / "probs.h5")
    write_mask(tmp_path / "root" / "Annotations" / "480p" / "bare" / "00000.png", np.zeros((32, 32), bool))
    with pytest.raises(InputError, match="00000.png: the first annotated mask is empty"):
        infer_tsn(model_path, frames_dir, tmp_path / "probs.h5")
    blurred = (np.arange(32 * 32).reshape(32, 32) % 250).astype(np.uint8)  # grey levels, as an anti-aliased mask
    write_labels(tmp_path / "root" / "Annotations" / "480p" / "bare" / "00000.png", blurred)
    with pytest.raises(InputError, match="too many for object ids"):
        infer_tsn(model_path, frames_dir, tmp_path / "probs.h5")
    assert not (tmp_path / "probs.h5").exists()


def test_mismatched_checkpoints_are_errors_naming_the_file(trained, tmp_path):
    model_path, frames_dir = trained
    save_checkpoint(tmp_path / "fusion.pt", FusionModel(), {}, 1)
    with pytest.raises(InputError, match="fusion.pt: checkpoint is a fusion model, expected a tsn model"):
        load_tsn(tmp_path / "fusion.pt")
    payload = read_checkpoint(model_path)
    payload["arch"] = {**payload["arch"], "value_channels": 32}
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(InputError, match="other.pt: weights do not match"):
        load_tsn(tmp_path / "other.pt")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="broken.pt"):
        infer_tsn(tmp_path / "broken.pt", frames_dir, tmp_path / "probs.h5")


def test_pixel_model_has_no_routing_map(tmp_path):
    frames_dir = _multi_object_clip(tmp_path)
    train_tsn([frames_dir], [], _params(streams="pixel", pretrain_iterations=0, iterations=1), tmp_path / "pixel.pt")
    with pytest.raises(InputError, match="no routing map"):
        infer_tsn(tmp_path / "pixel.pt", frames_dir, tmp_path / "probs.h5", routing_out=tmp_path / "routing.h5")
    infer_tsn(tmp_path / "pixel.pt", frames_dir, tmp_path / "probs.h5")
    assert read_probs_attrs(tmp_path / "probs.h5")["streams"] == "pixel"


# --- command line -------------------------------------------------------------------------------------


def test_cli_trains_infers_and_reports_bad_input(tmp_path, capsys):
    frames_dir = _multi_object_clip(tmp_path)
    params = json.dumps({**TINY, "pretrain_iterations": 1, "iterations": 1})
    out = tmp_path / "tsn.pt"
    assert main(["train-tsn", "--frames", str(frames_dir), "--out", str(out), "--params", params, "--threads", "1"]) == 0
    assert read_checkpoint(out)["arch"]["kind"] == "tsn"
    probs, routing = tmp_path / "probs.h5", tmp_path / "routing.h5"
    assert main(["infer-tsn", "--model", str(out), "--frames", str(frames_dir), "--out", str(probs), "--routing-out", str(routing), "--threads", "1"]) == 0
    assert read_probs(probs).ndim == 4 and read_probs(routing).shape[0] == CLIP.frames
    capsys.readouterr()

    assert main(["train-tsn", "--frames", str(frames_dir), "--out", str(out), "--params", '{"iters": 2}']) == 2
    assert "tsn.iters" in capsys.readouterr().err
    assert main(["infer-tsn", "--model", str(tmp_path / "none.pt"), "--frames", str(frames_dir), "--out", str(probs)]) == 2
    assert "none.pt: checkpoint not found" in capsys.readouterr().err
    assert main(["infer-tsn", "--model", str(out), "--frames", str(frames_dir), "--out", str(probs), "--seed-frame", "2"]) == 2
    assert "--seed-frame" in capsys.readouterr().err
    assert main(["infer-tsn", "--model", str(out), "--frames", str(frames_dir), "--out", str(probs), "--seed-probs", str(probs), "--seed-frame", "99"]) == 2
    assert "--seed-frame 99" in capsys.readouterr().err
