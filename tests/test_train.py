"""Training: parameters, data and augmentation, the loop (overfit, exact resume), fusion training, CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from fusionseg.cli import main
from fusionseg.errors import ConfigError, InputError
from fusionseg.infer.probs import write_probs
from fusionseg.io import write_image, write_mask
from fusionseg.models import StreamModel, load_model, read_checkpoint
from fusionseg.models.stream import build_stream
from fusionseg.train import loop
from fusionseg.train.data import (
    IGNORE,
    AnnotatedFrames,
    ConcatSources,
    PrefetchedBatches,
    ShardSamples,
    StreamBatches,
    augment,
    sample_batch,
)
from fusionseg.config import section_params
from fusionseg.train.streams import FusionData, train_fusion, train_stream

SIZE = (32, 40)


# Tiny models run fastest on one thread, above all on a machine shared with other jobs.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _scene(rng: np.random.Generator, shape=SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A dark textured background with one bright rectangle: the object."""
    image = rng.integers(0, 80, (*shape, 3)).astype(np.uint8)
    mask = np.zeros(shape, np.uint8)
    y, x = int(rng.integers(2, shape[0] // 2)), int(rng.integers(2, shape[1] // 2))
    image[y : y + shape[0] // 3, x : x + shape[1] // 3] = (220, 60, 60)
    mask[y : y + shape[0] // 3, x : x + shape[1] // 3] = 1
    return image, mask


def _make_sequence(root, name: str, frames: int = 4, annotated=(0, 2), seed: int = 0, with_flow: bool = False):
    rng = np.random.default_rng(seed)
    frames_dir = root / "JPEGImages" / "480p" / name
    for i in range(frames):
        image, mask = _scene(rng)
        write_image(frames_dir / f"{i:05d}.png", image)
        if i in annotated:
            write_mask(root / "Annotations" / "480p" / name / f"{i:05d}.png", mask)
        if with_flow:
            write_image(root / "flow_rgb" / name / f"{i:05d}.png", 255 - image)
    return frames_dir


class FixedSource:
    def __init__(self, count: int = 2, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.pairs = [_scene(rng) for _ in range(count)]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        return self.pairs[index]


def _params(section: str = "appearance", **overrides) -> dict:
    base = {"weights": "none", "iterations": 4, "batch_size": 2, "crop_size": 16, "checkpoint_every": 2}
    if section == "fusion":
        base = {"iterations": 4, "batch_size": 2, "checkpoint_every": 2}
    return section_params(section, json.dumps({**base, **overrides}))


def test_params_fill_defaults_and_name_unknown_keys():
    params = section_params("motion", '{"iterations": 7}')
    assert params["iterations"] == 7 and params["momentum"] == 0.9 and params["weight_decay"] == 0.0005
    # freeze_stages changes what is learned: off unless asked for
    assert params["freeze_stages"] == 0 and params["loader_workers"] == 1
    assert params["backbone"] == "efficientnet_lite0" and params["lr_power"] == 0.9
    with pytest.raises(ConfigError, match="crop_sise"):
        section_params("appearance", '{"crop_sise": 64}')
    with pytest.raises(ConfigError, match="fusion.lr"):
        section_params("fusion", '{"lr": -1}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        section_params("appearance", "{iterations: 3}")


def test_augment_crops_pads_with_ignore_and_flips():
    image = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    mask = np.ones((10, 12), np.uint8)
    params = {"scale_range": [1.0, 1.0], "crop_size": 16, "hflip": False}
    crop_image, crop_mask = augment(image, mask, params, torch.Generator().manual_seed(0))
    assert crop_image.shape == (16, 16, 3) and crop_mask.shape == (16, 16)
    assert (crop_mask[:10, :12] == 1).all() and (crop_mask[10:] == IGNORE).all() and (crop_mask[:, 12:] == IGNORE).all()
    flips = set()
    for seed in range(8):
        out, _ = augment(image, mask, {**params, "hflip": True}, torch.Generator().manual_seed(seed))
        # a flip mirrors the whole padded crop, so the image ends up on the right
        flips.add(bool(np.array_equal(out[:10, 4:], image[:, ::-1])))
    assert flips == {True, False}


def test_batches_depend_only_on_seed_and_iteration():
    source, params = FixedSource(3), _params(scale_range=[0.5, 1.5])
    first, again, other = sample_batch(source, params, 5), sample_batch(source, params, 5), sample_batch(source, params, 6)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])
    assert first[0].shape == (2, 3, 16, 16) and first[1].dtype == torch.long


def test_annotated_frames_use_only_annotated_frames(tmp_path):
    frames = _make_sequence(tmp_path, "a", frames=4, annotated=(1, 3), with_flow=True)
    rgb = AnnotatedFrames([frames])
    flow = AnnotatedFrames([frames], [tmp_path / "flow_rgb" / "a"])
    assert len(rgb) == len(flow) == 2
    assert np.array_equal(flow[0][0], 255 - rgb[0][0]) and np.array_equal(flow[0][1], rgb[0][1])
    assert set(np.unique(rgb[0][1])) <= {0, 1}
    combined = ConcatSources([rgb, FixedSource(3)])
    assert len(combined) == 5 and combined[2][0] is combined.sources[1][0][0]


def test_shard_source_reads_the_bootstrap_shards(tmp_path):
    from fusionseg.shards import Sample, ShardWriter, write_manifest

    rng = np.random.default_rng(1)
    pairs = [_scene(rng, (20 + 4 * i, 30)) for i in range(3)]
    with ShardWriter(tmp_path / "shards", shard_size=2) as writer:
        for i, (image, mask) in enumerate(pairs):
            writer.add(Sample(flow=image, mask=mask, dataset="d", sequence="s", frame=i, boxes=[(0, 0, 10, 10)], model_sha256="x"))
    write_manifest(writer.rows, tmp_path / "manifest.csv", shard_prefix="shards/")
    source = ShardSamples(tmp_path / "manifest.csv")
    assert len(source) == 3
    assert np.array_equal(source[2][0], pairs[2][0]) and np.array_equal(source[2][1], pairs[2][1])
    images, targets = sample_batch(source, _params("motion"), 0)
    assert images.shape == (2, 3, 16, 16) and targets.shape == (2, 16, 16)


def test_tiny_model_overfits_a_few_frames(tmp_path):
    params = _params(iterations=40, lr=0.01, crop_size=24, scale_range=[1.0, 1.0], hflip=False, checkpoint_every=100)
    rng = np.random.default_rng(0)
    source = [_scene(rng, (24, 24)) for _ in range(2)]
    train_stream("appearance", source, params, tmp_path / "a.pt")
    losses = pd.read_csv(tmp_path / "a.pt.log.csv")["loss"].to_numpy()
    assert len(losses) == 40
    assert losses[-5:].mean() < 0.3 * losses[:3].mean(), losses


@pytest.mark.parametrize("workers", [0, 1])
def test_resume_gives_exactly_the_uninterrupted_weights(tmp_path, monkeypatch, workers):
    params = _params(iterations=5, checkpoint_every=2, loader_workers=workers)
    source = FixedSource(3)
    train_stream("appearance", source, params, tmp_path / "whole.pt")

    original_step = loop.Trainer._step

    def interrupted(self, iteration, *args):
        if iteration == 3:
            raise KeyboardInterrupt
        return original_step(self, iteration, *args)

    monkeypatch.setattr(loop.Trainer, "_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_stream("appearance", source, params, tmp_path / "split.pt")
    assert not (tmp_path / "split.pt").exists()
    assert read_checkpoint_resume(tmp_path / "split.pt.resume.pt")["iteration"] == 2
    monkeypatch.setattr(loop.Trainer, "_step", original_step)
    train_stream("appearance", source, params, tmp_path / "split.pt")

    whole, split = read_checkpoint(tmp_path / "whole.pt"), read_checkpoint(tmp_path / "split.pt")
    assert whole["iteration"] == split["iteration"] == 5
    for key, value in whole["model"].items():
        assert torch.equal(value, split["model"][key]), key
    assert not (tmp_path / "split.pt.resume.pt").exists()
    log = pd.read_csv(tmp_path / "split.pt.log.csv")
    assert log["iteration"].tolist() == [1, 2, 3, 4, 5]
    assert log["loss"].tolist() == pd.read_csv(tmp_path / "whole.pt.log.csv")["loss"].tolist()


def test_prefetched_batches_are_the_batches_of_their_iterations():
    source, params = FixedSource(3), _params(scale_range=[0.5, 1.5])
    direct = StreamBatches(source, params)
    with PrefetchedBatches(direct, 8, workers=1) as prefetched:
        # in order, then a jump (a resumed run) and a step back: each time the batch of that iteration
        for iteration in (0, 1, 2, 6, 7, 3):
            (images,), targets = prefetched(iteration)
            (expected,), expected_targets = direct(iteration)
            assert torch.equal(images, expected) and torch.equal(targets, expected_targets), iteration


class BrokenSource(FixedSource):
    def __getitem__(self, index: int):
        raise InputError(f"frame {index}: unreadable")


def test_a_worker_error_reaches_the_training_as_the_same_one_line_error():
    broken = StreamBatches(BrokenSource(2), _params())
    with PrefetchedBatches(broken, 4, workers=1) as prefetched, pytest.raises(InputError, match=r"^frame \d: unreadable$"):
        prefetched(0)


def test_freeze_stages_keeps_the_first_stages_as_initialised(tmp_path):
    params = _params(iterations=3, freeze_stages=3, checkpoint_every=100)
    torch.manual_seed(params["seed"])
    initial = StreamModel(params["backbone"], params["weights"]).state_dict()
    train_stream("appearance", FixedSource(2), params, tmp_path / "f.pt")
    trained = read_checkpoint(tmp_path / "f.pt")["model"]
    frozen_prefixes = ("backbone._conv_stem", "backbone._bn0", "backbone._blocks.0.", "backbone._blocks.1.", "backbone._blocks.2.")
    stem_and_first_stages = [k for k in initial if k.startswith(frozen_prefixes)]
    assert stem_and_first_stages and all(torch.equal(initial[k], trained[k]) for k in stem_and_first_stages)
    # from-scratch BatchNorm of a frozen stage does not update its statistics either (the check above
    # covers running_mean/var); the next stage and the classifiers do learn
    assert not torch.equal(initial["backbone._blocks.3._project_conv.weight"], trained["backbone._blocks.3._project_conv.weight"])
    assert not torch.equal(initial["classifiers.0.weight"], trained["classifiers.0.weight"])


def test_freeze_stages_beyond_the_backbone_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="freeze_stages: 10.*9 stages"):
        train_stream("appearance", FixedSource(2), _params(freeze_stages=10), tmp_path / "f.pt")


def test_no_iterations_keeps_the_duts_network_as_it_is(tmp_path):
    params = _params(backbone="u2netp", weights="duts", iterations=0, input_size=32)
    train_stream("appearance", FixedSource(2), params, tmp_path / "a.pt")
    untouched = build_stream("u2netp", "duts", "appearance", 32).state_dict()
    saved = read_checkpoint(tmp_path / "a.pt")
    assert saved["iteration"] == 0 and saved["model"].keys() == untouched.keys()
    assert all(torch.equal(untouched[k], saved["model"][k]) for k in untouched)


def test_no_iterations_without_a_trained_head_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="iterations 0.*efficientnet_lite0 with weights none"):
        train_stream("appearance", FixedSource(2), _params(iterations=0), tmp_path / "a.pt")
    assert not (tmp_path / "a.pt").exists()


def read_checkpoint_resume(path):
    return torch.load(path, weights_only=True)


def test_resume_file_from_other_parameters_is_not_used(tmp_path):
    source = FixedSource(2)
    train_stream("appearance", source, _params(iterations=3, checkpoint_every=1), tmp_path / "ref.pt")
    stale = {"config": {"lr": 1.0}, "arch": {}, "iteration": 2}
    torch.save(stale, tmp_path / "a.pt.resume.pt")
    train_stream("appearance", source, _params(iterations=3, checkpoint_every=1), tmp_path / "a.pt")
    assert read_checkpoint(tmp_path / "a.pt")["iteration"] == 3
    ref, got = read_checkpoint(tmp_path / "ref.pt")["model"], read_checkpoint(tmp_path / "a.pt")["model"]
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_final_checkpoint_records_config_arch_iteration(tmp_path):
    params = _params(iterations=2)
    train_stream("motion", FixedSource(2), params, tmp_path / "m.pt")
    payload = read_checkpoint(tmp_path / "m.pt")
    assert payload["config"] == params and payload["iteration"] == 2
    assert payload["arch"] == {"kind": "stream", "stream": "motion", "backbone": "efficientnet_lite0"}
    assert load_model(tmp_path / "m.pt", "stream", "motion").arch["stream"] == "motion"


def _fusion_inputs(tmp_path):
    frames = _make_sequence(tmp_path, "f", frames=3, annotated=(0, 1, 2))
    masks = np.stack([np.asarray(AnnotatedFrames([frames])[i][1]) for i in range(3)]).astype(np.float32)
    rng = np.random.default_rng(0)
    # appearance is right but unsure, motion is confidently wrong on a third of the pixels
    app = np.clip(0.3 + 0.4 * masks + rng.normal(0, 0.05, masks.shape), 0, 1)
    mot = np.where(rng.random(masks.shape) < 0.3, 1 - masks, masks) * 0.9 + 0.05
    write_probs(tmp_path / "app.h5", [app], 3, SIZE, "appearance", "x")
    write_probs(tmp_path / "mot.h5", [mot], 3, SIZE, "motion", "x")
    return frames


def test_fusion_training_learns_from_stored_probabilities(tmp_path):
    frames = _fusion_inputs(tmp_path)
    data = FusionData([frames], [tmp_path / "app.h5"], [tmp_path / "mot.h5"])
    train_fusion(data, _params("fusion", iterations=60, lr=0.05, checkpoint_every=100), tmp_path / "fusion.pt")
    losses = pd.read_csv(tmp_path / "fusion.pt.log.csv")["loss"].to_numpy()
    assert losses[-5:].mean() < 0.8 * losses[:5].mean()
    model = load_model(tmp_path / "fusion.pt", "fusion")
    assert sum(p.numel() for p in model.parameters()) == 24


def test_fusion_data_checks_alignment(tmp_path):
    frames = _fusion_inputs(tmp_path)
    write_probs(tmp_path / "short.h5", [np.zeros((2, *SIZE))], 2, SIZE, "motion", "x")
    with pytest.raises(InputError, match=r"short\.h5.*3 frames"):
        FusionData([frames], [tmp_path / "app.h5"], [tmp_path / "short.h5"])
    with pytest.raises(InputError, match="aligned"):
        FusionData([frames], [tmp_path / "app.h5"], [])


def test_cli_trains_appearance_and_reports_bad_params(tmp_path, capsys, monkeypatch):
    frames = _make_sequence(tmp_path, "a")
    params = json.dumps({"weights": "none", "iterations": 2, "batch_size": 1, "crop_size": 24})
    out = tmp_path / "appearance.pt"
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert main(["train-appearance", "--frames", str(frames), "--out", str(out), "--params", params, "--threads", "1", "--device", "cpu"]) == 0
    assert read_checkpoint(out)["arch"]["stream"] == "appearance"
    # idle OpenMP threads sleep in every fusionseg step (and its loader workers), unless the caller chose
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert main(["train-appearance", "--frames", str(frames), "--out", str(out), "--params", '{"iters": 2}']) == 2
    assert "iters" in capsys.readouterr().err
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_cli_trains_motion_from_annotated_flow(tmp_path):
    frames = _make_sequence(tmp_path, "a", with_flow=True)
    params = json.dumps({"weights": "none", "iterations": 2, "batch_size": 1, "crop_size": 24})
    out = tmp_path / "motion.pt"
    args = ["train-motion", "--annotated", str(frames), str(tmp_path / "flow_rgb" / "a"), "--out", str(out), "--params", params]
    assert main(args) == 0
    assert read_checkpoint(out)["arch"]["stream"] == "motion"
    assert main(["train-motion", "--out", str(out)]) == 2


def test_resized_crops_are_windows_of_the_frame_at_the_crop_size():
    """resized_crops: a window of each side's scale_range share (clipped to 1) resized to the crop size;
    the whole frame when the share is 1."""
    from fusionseg.train.data import augment

    image = np.zeros((60, 100, 3), np.uint8)
    image[:, :50] = 200  # left half bright
    mask = np.zeros((60, 100), np.uint8)
    mask[:, :50] = 1
    params = {"scale_range": [1.0, 1.5], "crop_size": 32, "hflip": False, "resized_crops": True}
    out_image, out_mask = augment(image, mask, params, torch.Generator().manual_seed(3))
    assert out_image.shape == (32, 32, 3) and out_mask.shape == (32, 32)
    assert out_mask[:, :15].all() and not out_mask[:, 17:].any()  # the whole frame, squashed
    params["scale_range"] = [0.5, 0.5]
    for seed in range(5):
        _, window = augment(image, mask, params, torch.Generator().manual_seed(seed))
        assert window.shape == (32, 32) and set(np.unique(window)) <= {0, 1}
