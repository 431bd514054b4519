"""The tiny DAG, and configs/davis-gpu.yaml on the miniature of its datasets, through a real SLURM cluster
(one node on this machine) give the local runs' results.

Every rule goes through sbatch with the shipped profile (profiles/slurm, which batches per-sequence steps);
GPU steps ask for the fake GPU the cluster declares (resources.gpu 1) and fall back to the CPU. Needs root
and Debian's slurm-wlm and munge (.ci/run installs them); skipped without them. Every wait is bounded.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import miniature_workdir
from snakemake_support import DAVIS_GPU, MINIATURE_OVERLAY
from test_workflow import REPO, TINY_CONFIG, run_snakemake, tiny_config, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SCRIPTS = REPO / "tests" / "slurm"
CLUSTER_TIMEOUT_S = 120
SLURM_RUN_TIMEOUT_S = 1800


def _slurm_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root to start munged, slurmctld and slurmd"
    missing = [tool for tool in ("munged", "slurmctld", "slurmd", "sbatch", "squeue") if shutil.which(tool) is None]
    return f"SLURM not installed (missing {', '.join(missing)})" if missing else None


@dataclass(frozen=True)
class Cluster:
    env: dict  # what reaches the cluster: SLURM_CONF, and PATH with the srun and sbatch wrappers first
    sbatch_log: Path  # every submission's options, one line each


@dataclass(frozen=True)
class Submission:
    rules: frozenset[str]  # the rules of its jobs (a batch may hold several jobs of several rules)
    gpus: int
    runtime: int  # minutes


@pytest.fixture(scope="module")
def slurm_cluster():
    """A private one-node cluster; yields how to reach it, and stops it afterwards."""
    reason = _slurm_missing()
    if reason:
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="fusionseg-slurm-"))
    try:
        started = subprocess.run(
            ["bash", str(SCRIPTS / "start_cluster.sh"), str(folder)],
            capture_output=True, text=True, timeout=CLUSTER_TIMEOUT_S,
        )  # fmt: skip
        assert started.returncode == 0, started.stdout + started.stderr
        env = {"SLURM_CONF": str(folder / "slurm.conf"), "PATH": f"{folder / 'bin'}{os.pathsep}{os.environ['PATH']}"}
        yield Cluster(env, folder / "sbatch.log")
    finally:
        subprocess.run(["bash", str(SCRIPTS / "stop_cluster.sh"), str(folder)], timeout=CLUSTER_TIMEOUT_S)
        shutil.rmtree(folder, ignore_errors=True)


def run_through_slurm(workdir: Path, cluster: Cluster, configfiles: tuple[Path, ...] = ()) -> list[Submission]:
    """The workflow in `workdir` through the cluster with the shipped profile; the run's submissions."""
    start = cluster.sbatch_log.stat().st_size if cluster.sbatch_log.exists() else 0
    run_snakemake(
        workdir,
        "--profile", str(REPO / "profiles" / "slurm"),
        "--executor", "slurm",
        "--jobs", "4",
        "--cores", "2",  # the test node's CPUs: the most a batch of jobs may ask for
        "--retries", "0",
        "--latency-wait", "10",
        "--default-resources", "slurm_account=ci", "mem_mb=1000", "runtime=10",
        # No accounting database on the test cluster: squeue answers (slurm.conf keeps finished jobs
        # for MinJobAge=300 s, over 3x this first-check delay).
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "4",
        "--seconds-between-status-checks", "2",  # a batch's end is seen at once: the next one starts
        timeout=SLURM_RUN_TIMEOUT_S,
        env=cluster.env,
        configfiles=configfiles,
    )  # fmt: skip
    with open(cluster.sbatch_log) as log:
        log.seek(start)
        return [_submission(line.split()) for line in log if line.strip()]


def _submission(options: list[str]) -> Submission:
    """What one sbatch call asked for: its rules (the job step's --allowed-rules), GPUs and minutes."""
    rules = options[options.index("--allowed-rules") + 1 :]
    rules = rules[: next((i for i, o in enumerate(rules) if o.startswith("--")), len(rules))]
    gpus = next((int(o.split("=", 1)[1]) for o in options if o.startswith("--gpus=")), 0)
    return Submission(frozenset(rules), gpus, int(options[options.index("-t") + 1]))


def _slurm_config() -> dict:
    resources = {**TINY_CONFIG["resources"], "gpu": 1, "gpu_mem_mb": 1000, "slurm_partition": "debug"}
    return tiny_config(resources=resources)


def _same_files(first: Path, second: Path, pattern: str) -> list[str]:
    """Relative paths under `first` matching `pattern` whose bytes differ in `second` (or are missing)."""
    differing = []
    for path in sorted(first.glob(pattern)):
        twin = second / path.relative_to(first)
        if not twin.is_file() or not filecmp.cmp(path, twin, shallow=False):
            differing.append(str(path.relative_to(first)))
    return differing


# The steps that ask the cluster for a GPU (the networks' training and inference, flow, Saliency).
GPU_STEPS = {"compute_flow", "train_appearance", "infer_appearance", "train_motion", "infer_motion", "train_fusion",
             "infer_joint", "saliency"}  # fmt: skip


def test_slurm_run_matches_local_run(slurm_cluster, tmp_path) -> None:
    local, cluster = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    cluster.mkdir()
    write_config(local, TINY_CONFIG)
    write_config(cluster, _slurm_config())
    run_snakemake(local, "--cores", "2")
    submissions = run_through_slurm(cluster, slurm_cluster)

    every_step = {
        "synth_frames", "compute_flow", "encode_flow", "train_appearance", "infer_appearance", "bootstrap",
        "train_motion", "infer_motion", "train_fusion", "infer_joint", "threshold_masks", "flow_th",
        "flow_sal", "saliency", "score", "summarize", "write_roles", "render_report",
    }  # fmt: skip
    assert set().union(*(s.rules for s in submissions)) == every_step
    for submission in submissions:
        assert (submission.gpus > 0) == bool(submission.rules & GPU_STEPS), submission

    out_local, out_cluster = local / "out", cluster / "out"
    assert _same_files(out_local, out_cluster, "results/masks/*/*/*/*.png") == []
    assert len(list(out_local.glob("results/masks/*/*/*/*.png"))) == 6 * 5  # FusionSeg's five methods and Saliency
    for method in ("appearance", "motion", "joint", "flow-th", "flow-sal", "saliency"):
        scores = f"results/scores/{method}/synth.csv"
        pd.testing.assert_frame_equal(pd.read_csv(out_local / scores), pd.read_csv(out_cluster / scores))


def _test_cluster_resources() -> dict:
    """The cluster config's resources, fitted to the test node: its one partition, its 2 CPUs and 1 GPU,
    and memory it has; GPUs and per-rule runtimes stay as configs/davis-gpu.yaml asks."""
    requested = yaml.safe_load(DAVIS_GPU.read_text())["resources"]
    rules = {name: {**request, "mem_mb": 1500} for name, request in requested["rules"].items()}
    return {"resources": {"gpu": 1, "threads": 2, "mem_mb": 500, "gpu_mem_mb": 1500, "slurm_partition": "debug",
                          "gpu_partition": "debug", "rules": rules}}  # fmt: skip


def test_cluster_config_on_the_miniature_matches_the_local_run(slurm_cluster, miniature, miniature_run, tmp_path) -> None:
    workdir = miniature_workdir(tmp_path, miniature)
    fitted = tmp_path / "test-cluster.yaml"
    fitted.write_text(yaml.safe_dump(_test_cluster_resources()))
    submissions = run_through_slurm(workdir, slurm_cluster, configfiles=(DAVIS_GPU, MINIATURE_OVERLAY, fitted))

    config = yaml.safe_load(DAVIS_GPU.read_text())["resources"]
    assert GPU_STEPS <= set().union(*(s.rules for s in submissions))
    for submission in submissions:
        assert (submission.gpus == 1) == bool(submission.rules & GPU_STEPS), submission
        if len(submission.rules) == 1 and (rule := next(iter(submission.rules))) in config["rules"]:
            assert submission.runtime >= config["rules"][rule]["runtime"], submission  # its own request
    alone = [s for s in submissions if s.rules in ({"train_appearance"}, {"bootstrap"})]
    assert sorted(s.runtime for s in alone) == [config["rules"]["train_appearance"]["runtime"], config["rules"]["bootstrap"]["runtime"]]
    assert len(submissions) < 40  # per-sequence steps went in batches, not one job each

    out_local, out_cluster = miniature_run / "output" / "davis-gpu", workdir / "output" / "davis-gpu"
    assert len(list(out_local.glob("results/masks/*/*/*/*.png"))) == 6 * (4 + 4 + 4)  # 6 methods (Saliency too), 3 sequences
    assert _same_files(out_local, out_cluster, "results/masks/*/*/*/*.png") == []
    pd.testing.assert_frame_equal(pd.read_csv(out_local / "results" / "summary.csv"), pd.read_csv(out_cluster / "results" / "summary.csv"))
