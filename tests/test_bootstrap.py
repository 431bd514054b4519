"""The bootstrap step end to end on a tiny constructed weak-video fixture with known outcomes.

Sequence `alpha` has one frame per funnel outcome (no box, box test, fill test, flow test, kept);
sequence `beta` has three kept frames whose prediction spills outside the box, so pruning must raise
the Jaccard from 2/3 to 1.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

import fusionseg.bootstrap.run as bootstrap_run
from fusionseg.config import section_params
from fusionseg.bootstrap.run import SequenceInputs, run_bootstrap
from fusionseg.cli import main
from fusionseg.errors import ConfigError, InputError
from fusionseg.io import OUTPUT_MARKER, write_image, write_mask
from fusionseg.shards import ShardDataset, verify_manifest

H, W = 48, 64
DATASET = "weak"
OBJECT = (slice(10, 30), slice(10, 30))  # 20 x 20 ground-truth object
BOX = (9, 9, 31, 31)  # 22 x 22 around it: IoU and fill 400 / 484
SPILL = (slice(10, 30), slice(44, 54))  # 200 predicted pixels outside the box


def object_mask() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[OBJECT] = True
    return mask


def moving_flow() -> np.ndarray:
    flow = np.zeros((H, W, 3), np.uint8)
    flow[OBJECT] = (255, 40, 0)
    return flow


def frame_specs(name: str) -> list[dict]:
    """Per frame: prediction, flow image, boxes, ground truth (or None)."""
    good = object_mask().astype(np.float16)
    if name == "beta":
        spilled = good.copy()
        spilled[SPILL] = 0.9
        return [dict(prob=spilled, flow=moving_flow(), boxes=[BOX], truth=object_mask())] * 3
    box_filled = np.zeros((H, W), np.float16)
    box_filled[BOX[1] : BOX[3], BOX[0] : BOX[2]] = 1
    return [
        dict(prob=good, flow=moving_flow(), boxes=[], truth=None),
        dict(prob=np.zeros((H, W), np.float16), flow=moving_flow(), boxes=[BOX], truth=object_mask()),
        dict(prob=box_filled, flow=moving_flow(), boxes=[BOX], truth=None),
        dict(prob=good, flow=np.full((H, W, 3), 90, np.uint8), boxes=[BOX], truth=None),
        dict(prob=good, flow=moving_flow(), boxes=[BOX], truth=object_mask()),
    ]


def write_sequence(base: Path, name: str) -> SequenceInputs:
    """Write one sequence in the stage contract's layout; return its aligned inputs."""
    root = base / "frames" / DATASET
    frames_dir = root / "JPEGImages" / "480p" / name
    flow_dir = base / "flow_rgb" / DATASET / name
    probs_path = base / "probs" / "appearance" / DATASET / f"{name}.h5"
    specs = frame_specs(name)
    rng = np.random.default_rng(3)
    box_rows = []
    for index, spec in enumerate(specs):
        write_image(frames_dir / f"{index:05d}.jpg", rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        write_image(flow_dir / f"{index:05d}.png", spec["flow"])
        if spec["truth"] is not None:
            write_mask(root / "Annotations" / "480p" / name / f"{index:05d}.png", spec["truth"])
        box_rows += [(index, *box) for box in spec["boxes"]]
    (root / "Boxes").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(box_rows, columns=["frame", "x0", "y0", "x1", "y1"]).to_csv(root / "Boxes" / f"{name}.csv", index=False)
    probs_path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(probs_path, "w") as handle:
        handle.create_dataset("prob", data=np.stack([s["prob"] for s in specs]), chunks=(1, H, W))
        handle["prob"].attrs["model_sha256"] = "cd" * 32
    return SequenceInputs(frames_dir, probs_path, flow_dir)


@pytest.fixture
def weak_video(tmp_path) -> list[SequenceInputs]:
    return [write_sequence(tmp_path, "alpha"), write_sequence(tmp_path, "beta")]


def params(**overrides) -> dict:
    return section_params("bootstrap", {"shard_size": 2, **overrides})


def test_funnel_counts_each_outcome_and_adds_up(weak_video, tmp_path, caplog):
    out = tmp_path / "pseudo"
    with caplog.at_level(logging.INFO, logger="fusionseg.bootstrap"):
        run_bootstrap(weak_video, out, params())
    assert "kept 4 of 7 candidate frames (8 frames, 1 without a box)" in caplog.text
    funnel = pd.read_csv(out / "funnel.csv").set_index("sequence")
    assert funnel.loc["alpha", ["frames", "no_box", "candidates", "passed_box_test", "passed_fill_test", "kept"]].tolist() == [5, 1, 4, 3, 2, 1]
    assert funnel.loc["beta", ["frames", "no_box", "candidates", "kept"]].tolist() == [3, 0, 3, 3]
    per_sequence = funnel.drop(index="total")
    assert (per_sequence["frames"] == per_sequence["no_box"] + per_sequence["candidates"]).all()
    counts = ["frames", "no_box", "candidates", "passed_box_test", "passed_fill_test", "kept"]
    assert funnel.loc["total", counts].tolist() == per_sequence[counts].sum().tolist()
    assert len(pd.read_csv(out / "manifest.csv")) == funnel.loc["total", "kept"] == 4


def test_quality_pruning_raises_jaccard_and_overall_is_a_mean_over_frames(weak_video, tmp_path):
    out = tmp_path / "pseudo"
    run_bootstrap(weak_video, out, params())
    quality = pd.read_csv(out / "quality.csv").set_index("sequence")
    beta = quality.loc["beta"]
    assert beta["frames"] == 3 and beta["kept_frames"] == 3
    assert beta["j_before_pruning"] == pytest.approx(400 / 600)
    assert beta["j_after_pruning"] == pytest.approx(1.0) and beta["j_kept"] == pytest.approx(1.0)
    alpha = quality.loc["alpha"]  # frame 1 (empty prediction, J 0) and frame 4 (kept, J 1)
    assert (alpha["frames"], alpha["kept_frames"], alpha["j_after_pruning"], alpha["j_kept"]) == (2, 1, 0.5, 1.0)
    total = quality.loc["total"]
    assert total["frames"] == 5
    assert total["j_before_pruning"] == pytest.approx((0 + 1 + 3 * 400 / 600) / 5)
    assert total["j_after_pruning"] == pytest.approx(4 / 5)  # over frames; over sequences it would be 0.75


def test_kept_samples_round_trip_through_the_shards(weak_video, tmp_path):
    out = tmp_path / "pseudo"
    run_bootstrap(weak_video, out, params(store_rgb=True))
    dataset = ShardDataset(out / "manifest.csv", with_rgb=True)
    assert [(s["sequence"], s["frame"]) for s in dataset] == [("alpha", 4), ("beta", 0), ("beta", 1), ("beta", 2)]
    sample = dataset[1]
    assert np.array_equal(sample["image"], moving_flow())
    assert np.array_equal(sample["mask"], object_mask().astype(np.uint8))  # the spill was pruned
    assert sample["rgb"].shape == (H, W, 3) and sample["dataset"] == DATASET
    manifest = pd.read_csv(out / "manifest.csv")
    assert json.loads(manifest["boxes"].iloc[0]) == [list(BOX)]
    assert set(manifest["model_sha256"]) == {"cd" * 32}
    assert sorted(p.name for p in (out / "shards").iterdir()) == [OUTPUT_MARKER, "shard-00000.h5", "shard-00001.h5"]
    assert verify_manifest(out / "manifest.csv")["samples"].tolist() == [2, 2]


def test_interrupted_run_lists_no_shard_and_leaves_no_final_shard_name(weak_video, tmp_path, monkeypatch):
    out = tmp_path / "pseudo"
    run_bootstrap(weak_video, out, params())  # a complete earlier run, whose outputs must not survive
    real_read_image = bootstrap_run.read_image

    def failing_read_image(path):
        if Path(path).parent.name == "beta" and Path(path).name == "00002.png":
            raise RuntimeError("interrupted mid-shard")
        return real_read_image(path)

    monkeypatch.setattr(bootstrap_run, "read_image", failing_read_image)
    with pytest.raises(RuntimeError, match="interrupted"):
        run_bootstrap(weak_video, out, params())  # shard 0 complete, shard 1 half written
    assert not (out / "manifest.csv").exists()
    assert list(out.rglob("shard-*.h5")) == []


def test_inputs_that_do_not_match_are_named(weak_video, tmp_path):
    alpha, beta = weak_video
    with pytest.raises(InputError, match="beta.h5: does not belong to sequence 'alpha'"):
        run_bootstrap([SequenceInputs(alpha.frames_dir, beta.probs_path, alpha.flow_rgb_dir)], tmp_path / "o", params())
    (alpha.flow_rgb_dir / "00003.png").unlink()
    with pytest.raises(InputError, match="00003.png: flow image not found"):
        run_bootstrap([alpha], tmp_path / "o", params())


def test_params_reject_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError, match="bootstrap.box_iuo: unknown key"):
        section_params("bootstrap", {"box_iuo": 0.7})
    with pytest.raises(ConfigError, match="bootstrap.max_fill"):
        section_params("bootstrap", {"max_fill": 1.5})
    assert section_params("bootstrap")["compression"] == "none"


def test_cli_end_to_end(weak_video, tmp_path, capsys):
    out = tmp_path / "pseudo"
    args = ["bootstrap", "--out-dir", str(out), "--params", json.dumps({"shard_size": 3, "min_flow_contrast": 30})]
    for flag, attribute in (("--frames", "frames_dir"), ("--probs", "probs_path"), ("--flow-rgb", "flow_rgb_dir")):
        args += [flag, *(str(getattr(item, attribute)) for item in weak_video)]
    assert main(args) == 0
    assert "kept 4 of 7 candidate frames (8 frames)" in capsys.readouterr().out
    for name in ("manifest.csv", "funnel.csv", "quality.csv"):
        assert (out / name).is_file()
        assert len(pd.read_csv(out / name)) > 0, name
    assert len(ShardDataset(out / "manifest.csv")) == 4  # the kept frames, each readable from its shard
    assert main(["verify-shards", str(out / "manifest.csv")]) == 0
    assert main(args[:-1] + [args[-1], "extra"]) == 2
    assert "must list the same sequences" in capsys.readouterr().err
    assert main(args[:4] + [json.dumps({"shard_sise": 3})] + args[5:]) == 2
    assert "bootstrap.shard_sise: unknown key" in capsys.readouterr().err


def test_quality_file_exists_without_ground_truth(tmp_path):
    inputs = write_sequence(tmp_path, "alpha")
    for mask in (tmp_path / "frames" / DATASET / "Annotations").rglob("*.png"):
        mask.unlink()
    run_bootstrap([inputs], tmp_path / "pseudo", params())
    quality = pd.read_csv(tmp_path / "pseudo" / "quality.csv")
    assert quality.empty and "j_kept" in quality.columns


def test_run_that_keeps_nothing_writes_empty_but_valid_outputs(tmp_path):
    inputs = write_sequence(tmp_path, "alpha")
    out = tmp_path / "pseudo"
    run_bootstrap([inputs], out, params(min_flow_contrast=10_000))
    assert [p.name for p in (out / "shards").iterdir()] == [OUTPUT_MARKER]
    assert len(ShardDataset(out / "manifest.csv")) == 0
    assert verify_manifest(out / "manifest.csv").empty
    assert pd.read_csv(out / "funnel.csv").set_index("sequence").loc["total", "kept"] == 0
