"""The Snakemake workflow end to end on a tiny synthetic config, and what reruns after a change.

One real run of the tiny DAG (module fixture); every other check is a dry run against its outputs, read
from Snakemake's own job table, so each rerun rule is proved by the jobs Snakemake plans.
"""

from __future__ import annotations

import copy
import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fusionseg.io import read_image
from snakemake_support import REPO, dry_run, job_counts, planned_jobs, run_snakemake, write_config

# Two clips: clip000 plays every training role (role_overlap allows it), clip001 is the benchmark.
TINY_CONFIG = {
    "out_dir": "out",
    "datasets": {
        "synth": {
            "layout": "synthetic",
            "synthetic": {"sequences": 2, "frames": 5, "height": 48, "width": 64, "max_objects": 1, "seed": 7},
            "score_frames": "all",
        }
    },
    "roles": {
        "appearance_train": [{"dataset": "synth", "sequences": ["clip000"]}],
        "weak_video": [{"dataset": "synth", "sequences": ["clip000"]}],
        "fusion_train": [{"dataset": "synth", "sequences": ["clip000"]}],
        "benchmark": [{"dataset": "synth", "sequences": ["clip001"]}],
    },
    "role_overlap": [
        ["appearance_train", "weak_video"],
        ["appearance_train", "fusion_train"],
        ["weak_video", "fusion_train"],
    ],
    "flow": {"method": "tvl1", "device": "cpu", "tvl1": {"iterations": 10, "warps": 2, "max_levels": 3}},
    "flow_rgb": {"normalization": "per_frame"},
    "motion_sources": ["shards", "annotated"],
    "appearance": {"weights": "none", "iterations": 2, "batch_size": 2, "crop_size": 32, "checkpoint_every": 1},
    "motion": {"weights": "none", "iterations": 2, "batch_size": 2, "crop_size": 32, "checkpoint_every": 1},
    "fusion": {"iterations": 5, "batch_size": 2},
    "inference": {"batch_size": 4},
    # A two-iteration appearance stream finds no objects the paper's tests accept; these tests pass
    # every box, so the pseudo labels (and the motion stream trained on them) are still exercised.
    "bootstrap": {"shard_size": 4, "threshold": 0.0, "box_iou": 0.0, "max_fill": 1.0, "min_flow_contrast": 0},
    "resources": {"gpu": 0, "threads": 1, "mem_mb": 1000, "runtime": 10},
}


def tiny_config(**sections) -> dict:
    """The tiny config with whole top-level sections replaced."""
    config = copy.deepcopy(TINY_CONFIG)
    config.update(copy.deepcopy(sections))
    return config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished real run of the tiny DAG, with compute_flow stored in a between-workflow cache."""
    workdir = tmp_path_factory.mktemp("tiny")
    write_config(workdir, TINY_CONFIG)
    cache = workdir.parent / f"{workdir.name}-cache"
    cache.mkdir()
    run_snakemake(workdir, "--cores", "2", "--cache", env={"SNAKEMAKE_OUTPUT_CACHE": str(cache)})
    return workdir


def test_lint_reports_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_shipped_config_plans_every_step(tmp_path) -> None:
    write_config(tmp_path, yaml.safe_load((REPO / "config.yaml").read_text()))
    jobs = planned_jobs(tmp_path)
    every_step = {
        "synth_frames", "compute_flow", "encode_flow", "train_appearance", "infer_appearance", "bootstrap",
        "train_motion", "infer_motion", "train_fusion", "infer_joint", "threshold_masks", "flow_th",
        "flow_sal", "saliency", "score", "summarize", "write_roles", "render_report", "effective_config", "all",
    }  # fmt: skip
    assert set(jobs) == every_step
    assert jobs["score"] == 6  # Saliency and FusionSeg's five methods on the one benchmark dataset
    assert jobs["synth_frames"] == 52  # 40 short appearance clips + 12 longer ones


def test_stage_target_plans_only_its_stage(tmp_path) -> None:
    write_config(tmp_path, TINY_CONFIG)
    assert planned_jobs(tmp_path, "flow") == {"synth_frames": 2, "compute_flow": 2, "encode_flow": 2, "flow": 1}


def test_validation_split_is_scored_apart_from_the_benchmark(tmp_path) -> None:
    config = tiny_config()
    config["datasets"]["synth"]["synthetic"]["sequences"] = 3
    config["roles"]["validation"] = [{"dataset": "synth", "sequences": ["clip002"]}]
    write_config(tmp_path, config)
    plan = dry_run(tmp_path)
    jobs = job_counts(plan)
    assert jobs["score"] == 6 and jobs["score_validation"] == 6 and jobs["summarize_validation"] == 1
    assert "out/results/validation/scores/joint/synth.csv" in plan
    assert "out/results/validation/summary.csv" in plan


def test_invalid_config_is_one_line_naming_the_file_and_key(tmp_path) -> None:
    write_config(tmp_path, tiny_config(flow={"method": "raft"}))
    with pytest.raises(AssertionError) as failure:
        planned_jobs(tmp_path)
    message = str(failure.value)
    assert "config.yaml: flow.method: 'raft' is not one of" in message
    assert "Failed validating" not in message and len(message.splitlines()) < 12  # no schema dump


def job_resources_line(plan: str, rule: str) -> str:
    """The `resources:` line of the first job of `rule` in a dry run."""
    block = plan.split(f"rule {rule}:", 1)[1].split("\n\n", 1)[0]
    return next(line for line in block.splitlines() if line.strip().startswith("resources:"))


def test_per_rule_requests_replace_the_defaults(tmp_path) -> None:
    rules = {"train_appearance": {"runtime": 480, "mem_mb": 9000}, "infer_joint": {"gpu": 0}}
    resources = {**TINY_CONFIG["resources"], "gpu": 1, "gpu_mem_mb": 3000, "gpu_partition": "gpu", "rules": rules}
    write_config(tmp_path, tiny_config(resources=resources))
    plan = dry_run(tmp_path)
    train = job_resources_line(plan, "train_appearance")
    assert "runtime=480" in train and "mem_mb=9000" in train and "gpu=1" in train and "slurm_partition=gpu" in train
    joint = job_resources_line(plan, "infer_joint")  # a GPU step told to use none: a CPU job
    assert "gpu=" not in joint and "mem_mb=1000" in joint and "slurm_partition" not in joint
    flow = job_resources_line(plan, "compute_flow")  # the defaults of a GPU step
    assert "runtime=10" in flow and "mem_mb=3000" in flow and "gpu=1" in flow
    assert "gpu=" not in job_resources_line(plan, "synth_frames")


def test_per_rule_requests_name_existing_rules_and_known_keys(tmp_path) -> None:
    resources = {**TINY_CONFIG["resources"], "rules": {"train_apperance": {"runtime": 480}}}
    write_config(tmp_path, tiny_config(resources=resources))
    with pytest.raises(AssertionError, match="resources.rules.train_apperance: not a rule with its own requests"):
        planned_jobs(tmp_path)
    resources["rules"] = {"train_appearance": {"time": 480}}
    write_config(tmp_path, tiny_config(resources=resources))
    with pytest.raises(AssertionError, match=r"resources.rules.train_appearance.time: unknown key"):
        planned_jobs(tmp_path)


@pytest.mark.slow
def test_jobs_run_the_python_that_runs_snakemake(tmp_path) -> None:
    """A virtual environment's snakemake works without activating it: jobs do not run PATH's python."""
    write_config(tmp_path, TINY_CONFIG)
    other = tmp_path / "other-python"
    other.mkdir()
    (other / "python").write_text("#!/bin/sh\necho 'not the python running snakemake' >&2\nexit 3\n")
    (other / "python").chmod(0o755)
    path = {"PATH": f"{other}{os.pathsep}{os.environ['PATH']}"}
    run_snakemake(tmp_path, "--cores", "1", targets=("out/frames/synth/Tables/clip001.csv",), env=path)
    frame = tmp_path / "out" / "frames" / "synth" / "JPEGImages" / "480p" / "clip001" / "00000.jpg"
    assert frame.is_file()
    assert read_image(frame).shape == (48, 64, 3)  # decodes at the config's synthetic size


def test_tiny_run_writes_every_result(tiny_run: Path) -> None:
    out = tiny_run / "out"
    assert (out / "results" / "report.html").stat().st_size > 0
    for method in ("appearance", "motion", "joint", "flow-th", "flow-sal"):
        masks = sorted((out / "results" / "masks" / method / "synth" / "clip001").glob("*.png"))
        assert len(masks) == 5, method
        assert (out / "results" / "scores" / method / "synth.csv").is_file()
        scores = pd.read_csv(out / "results" / "scores" / method / "synth.csv")
        assert list(scores["sequence"]) == ["clip001"] and scores["J_mean"].between(0, 1).all(), method
    assert (out / "benchmarks" / "train_appearance" / "train_appearance.tsv").is_file()
    timing = pd.read_csv(out / "benchmarks" / "train_appearance" / "train_appearance.tsv", sep="\t")
    assert len(timing) == 1 and timing["s"].iloc[0] > 0


def test_second_run_does_nothing(tiny_run: Path) -> None:
    text = dry_run(tiny_run)
    assert job_counts(text) == {}, text


def test_flow_colour_coding_reruns_encode_flow_and_below_only(tiny_run: Path) -> None:
    write_config(tiny_run, tiny_config(flow_rgb={"normalization": "fixed", "max_flow": 4.0}))
    try:
        jobs = planned_jobs(tiny_run)
    finally:
        write_config(tiny_run, TINY_CONFIG)
    assert jobs["encode_flow"] == 2
    for downstream in ("bootstrap", "train_motion", "infer_motion", "train_fusion", "flow_sal", "render_report"):
        assert downstream in jobs
    for upstream in ("synth_frames", "compute_flow", "train_appearance", "infer_appearance", "flow_th"):
        assert upstream not in jobs


def test_fusion_training_change_reruns_fusion_and_below_only(tiny_run: Path) -> None:
    write_config(tiny_run, tiny_config(fusion={"iterations": 6, "batch_size": 2}))
    try:
        jobs = planned_jobs(tiny_run)
    finally:
        write_config(tiny_run, TINY_CONFIG)
    assert set(jobs) == {
        "train_fusion", "infer_joint", "threshold_masks", "score", "summarize", "render_report", "effective_config", "all",
    }  # fmt: skip
    assert jobs["threshold_masks"] == 1 and jobs["score"] == 1


def test_new_benchmark_dataset_runs_only_its_own_chain(tiny_run: Path) -> None:
    config = tiny_config()
    config["datasets"]["synth_b"] = {
        "layout": "synthetic",
        "synthetic": {"sequences": 1, "frames": 5, "height": 48, "width": 64, "seed": 8},
    }
    config["roles"]["benchmark"].append({"dataset": "synth_b"})
    write_config(tiny_run, config)
    try:
        jobs = planned_jobs(tiny_run)
    finally:
        write_config(tiny_run, TINY_CONFIG)
    assert not {"train_appearance", "bootstrap", "train_motion", "train_fusion"} & set(jobs)
    for per_sequence in ("synth_frames", "compute_flow", "encode_flow", "infer_appearance", "infer_motion", "infer_joint"):
        assert jobs[per_sequence] == 1, per_sequence
    assert jobs["score"] == 6  # the new dataset's six methods; the old dataset's scores stand


def test_cached_flow_is_reused_by_another_workflow(tiny_run: Path, tmp_path) -> None:
    cache = tiny_run.parent / f"{tiny_run.name}-cache"
    # One entry per sequence: the cache key tells the clips apart.
    assert len(list(cache.iterdir())) == 2
    write_config(tmp_path, TINY_CONFIG)
    run_snakemake(tmp_path, "--cores", "2", "--cache", targets=("flow",), env={"SNAKEMAKE_OUTPUT_CACHE": str(cache)})
    flows = [tmp_path / "out" / "flow" / "synth" / f"{seq}.h5" for seq in ("clip000", "clip001")]
    assert not filecmp.cmp(*flows, shallow=False)
    for seq in ("clip000", "clip001"):
        flow = tmp_path / "out" / "flow" / "synth" / f"{seq}.h5"
        assert flow.is_symlink() and flow.resolve().parent == cache.resolve()
        assert filecmp.cmp(flow, tiny_run / "out" / "flow" / "synth" / f"{seq}.h5", shallow=False)
