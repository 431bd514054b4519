"""TSN and SegFlow as workflow systems beside FusionSeg: one real tiny run with every system, scored in
one summary (TSN semi-supervised, Ours-Joint+TSN and SegFlow unsupervised), and the DAG's wiring.

The run (conftest.systems_run, shared with tests/test_workflow_trust.py) also writes below an out_dir
with a space and segments a video whose folder and file name hold spaces and shell metacharacters."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from fusionseg.infer.probs import read_probs
from snakemake_support import dry_run, job_counts, planned_jobs, write_config
from test_segment import write_clip
from test_workflow import tiny_config

SYNTH = {"sequences": 2, "frames": 5, "height": 64, "width": 96, "max_objects": 1, "seed": 7}


def systems_config(**sections) -> dict:
    config = tiny_config(
        datasets={
            "synth": {"layout": "synthetic", "synthetic": SYNTH, "score_frames": "all"},
            "flow_synth": {"layout": "synthetic", "synthetic": {**SYNTH, "sequences": 1, "seed": 8}},
        },
        systems=["fusionseg", "tsn", "segflow"],
        tsn={
            "weights": "none", "pretrain_iterations": 1, "iterations": 2, "batch_size": 2, "crop_size": 64,
            "synthetic_clips": 1, "checkpoint_every": 1, "ablation": True,
        },
        segflow={
            "weights": "none", "iterations": 2, "seg_batch_size": 2, "flow_batch_size": 2, "crop_size": 64,
            "checkpoint_every": 1, "online": True, "online_iterations": 1,
        },
    )  # fmt: skip
    config["roles"]["flow_train"] = [{"dataset": "flow_synth"}]
    config.update(sections)
    return config


RUN_OUT = "out dir"
HOSTILE_VIDEO = "x$(touch PWNED) (1).mp4"
# Its sequence name: the stem with every run of characters outside the name rule as '_' (catalog.video_name).
HOSTILE_SEQUENCE = "x_touch_PWNED_1"


def systems_run_config(workdir: Path) -> dict:
    """The shared run's config: every system, out_dir RUN_OUT, and HOSTILE_VIDEO (written into
    `workdir`/video clips) segmented."""
    videos = workdir / "video clips"
    videos.mkdir()
    write_clip(videos / HOSTILE_VIDEO, 5, size=(96, 64))
    config = systems_config(out_dir=RUN_OUT)
    config["datasets"]["clips"] = {"layout": "video", "root": str(videos)}
    config["roles"]["segment"] = [{"dataset": "clips"}]
    return config


def test_every_system_is_scored_in_one_summary(systems_run: Path) -> None:
    out = systems_run / RUN_OUT / "results"
    with open(out / "summary.csv") as fh:
        labels = [row["method"] for row in csv.DictReader(fh)]
    assert labels == [
        "Flow-Th", "Flow-Sal", "Saliency", "Ours-A", "Ours-M", "Ours-Joint",
        "Ours-Joint+TSN", "SegFlow", "TSN", "TSN (pixel stream)", "SegFlow-online",
    ]  # fmt: skip
    for method in ("tsn", "tsn-pixel", "joint-tsn", "segflow", "segflow-online"):
        masks = sorted((out / "masks" / method / "synth" / "clip001").glob("*.png"))
        assert len(masks) == 5, method


def test_semi_supervised_methods_use_that_protocol(systems_run: Path) -> None:
    scores = systems_run / RUN_OUT / "results" / "scores"
    protocols = {}
    for method in ("tsn", "tsn-pixel", "segflow-online", "joint-tsn", "segflow"):
        with open(scores / method / "synth.csv") as fh:
            protocols[method] = {row["protocol"] for row in csv.DictReader(fh)}
    assert protocols == {
        "tsn": {"semi-supervised"}, "tsn-pixel": {"semi-supervised"}, "segflow-online": {"semi-supervised"},
        "joint-tsn": {"unsupervised"}, "segflow": {"unsupervised"},
    }  # fmt: skip


def test_routing_maps_are_written_and_shown_in_the_report(systems_run: Path) -> None:
    routing = systems_run / RUN_OUT / "probs" / "tsn-routing" / "synth" / "clip001.h5"
    assert routing.is_file()
    weights = read_probs(routing)
    assert weights.shape == (SYNTH["frames"], SYNTH["height"] // 16, SYNTH["width"] // 16)  # per frame, stride 16
    assert ((weights >= 0) & (weights <= 1)).all()
    report = (systems_run / RUN_OUT / "results" / "report.html").read_text()
    assert "TSN routing maps" in report and "Ours-Joint+TSN</th>" in report


def test_flow_method_segflow_uses_the_segflow_trained_here(tmp_path) -> None:
    config = systems_config()
    config["flow"] = {"method": "segflow", "device": "cpu"}
    write_config(tmp_path, config)
    text = dry_run(tmp_path, "out/flow/synth/clip001.h5")
    assert job_counts(text) == {"synth_frames": 3, "train_segflow": 1, "compute_flow": 1}, text
    assert "out/models/segflow.pt" in text.split("rule compute_flow:", 1)[1].split("output:", 1)[0]


def test_segflow_without_flow_ground_truth_is_one_line(tmp_path) -> None:
    config = systems_config()
    del config["roles"]["flow_train"]
    write_config(tmp_path, config)
    with pytest.raises(AssertionError, match="systems: segflow needs flow with ground truth"):
        planned_jobs(tmp_path)
