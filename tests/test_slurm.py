"""The tiny DAG through a real SLURM cluster (one node on this machine) gives the local run's results.

Every rule goes through sbatch with the shipped profile (profiles/slurm); GPU steps ask for the fake GPU
the cluster declares (resources.gpu 1) and fall back to the CPU. Needs root and Debian's slurm-wlm and
munge (.ci/run installs them); skipped without them. Every wait is bounded.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from test_workflow import REPO, TINY_CONFIG, run_snakemake, tiny_config, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SCRIPTS = REPO / "tests" / "slurm"
CLUSTER_TIMEOUT_S = 120
SLURM_RUN_TIMEOUT_S = 900


def _slurm_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root to start munged, slurmctld and slurmd"
    missing = [tool for tool in ("munged", "slurmctld", "slurmd", "sbatch", "squeue") if shutil.which(tool) is None]
    return f"SLURM not installed (missing {', '.join(missing)})" if missing else None


@pytest.fixture(scope="module")
def slurm_cluster():
    """A private one-node cluster; yields the environment that reaches it, and stops it afterwards."""
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
        yield {"SLURM_CONF": str(folder / "slurm.conf"), "PATH": f"{folder / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    finally:
        subprocess.run(["bash", str(SCRIPTS / "stop_cluster.sh"), str(folder)], timeout=CLUSTER_TIMEOUT_S)
        shutil.rmtree(folder, ignore_errors=True)


def _slurm_config() -> dict:
    resources = {**TINY_CONFIG["resources"], "gpu": 1, "gpu_mem_mb": 1000, "slurm_partition": "debug"}
    return tiny_config(resources=resources)


def _submitted_rules(workdir: Path) -> set[str]:
    """Rules that SLURM ran, from the plugin's per-job log folders (kept with --slurm-keep-successful-logs)."""
    logs = workdir / ".snakemake" / "slurm_logs"
    return {path.name.removeprefix("rule_") for path in logs.iterdir() if path.is_dir()}


def _gpu_requests(env: dict) -> dict[str, str]:
    """Per rule, the GPUs its SLURM jobs asked for (finished jobs stay listed for MinJobAge)."""
    listing = subprocess.run(
        ["scontrol", "--oneliner", "show", "job"],
        capture_output=True, text=True, timeout=30, check=True, env={**os.environ, **env},
    )  # fmt: skip
    requests = {}
    for line in listing.stdout.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        rule = fields.get("Comment", "").removeprefix("rule_").split("_wildcards_")[0]
        requests[rule] = requests.get(rule, "") + fields.get("TresPerJob", "")
    return requests


def _same_files(first: Path, second: Path, pattern: str) -> list[str]:
    """Relative paths under `first` matching `pattern` whose bytes differ in `second` (or are missing)."""
    differing = []
    for path in sorted(first.glob(pattern)):
        twin = second / path.relative_to(first)
        if not twin.is_file() or not filecmp.cmp(path, twin, shallow=False):
            differing.append(str(path.relative_to(first)))
    return differing


def test_slurm_run_matches_local_run(slurm_cluster, tmp_path) -> None:
    local, cluster = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    cluster.mkdir()
    write_config(local, TINY_CONFIG)
    write_config(cluster, _slurm_config())
    run_snakemake(local, "--cores", "2")
    run_snakemake(
        cluster,
        "--profile", str(REPO / "profiles" / "slurm"),
        "--executor", "slurm",
        "--jobs", "4",
        "--retries", "0",
        "--latency-wait", "10",
        "--default-resources", "slurm_account=ci", "mem_mb=1000", "runtime=10",
        # No accounting database on the test cluster: squeue answers (slurm.conf keeps finished jobs
        # for MinJobAge=300 s, over 3x this first-check delay).
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "4",
        "--slurm-keep-successful-logs",
        timeout=SLURM_RUN_TIMEOUT_S,
        env=slurm_cluster,
    )  # fmt: skip

    submitted = _submitted_rules(cluster)
    every_step = {
        "synth_frames", "compute_flow", "encode_flow", "train_appearance", "infer_appearance", "bootstrap",
        "train_motion", "infer_motion", "train_fusion", "infer_joint", "threshold_masks", "flow_th",
        "flow_sal", "saliency", "score", "summarize", "write_roles", "render_report",
    }  # fmt: skip
    assert submitted == every_step
    requests = _gpu_requests(slurm_cluster)
    assert "gpu" in requests["train_appearance"] and "gpu" in requests["compute_flow"]
    assert "gpu" not in requests["synth_frames"]

    out_local, out_cluster = local / "out", cluster / "out"
    assert _same_files(out_local, out_cluster, "results/masks/*/*/*/*.png") == []
    assert len(list(out_local.glob("results/masks/*/*/*/*.png"))) == 5 * 5
    for method in ("appearance", "motion", "joint", "flow-th", "flow-sal"):
        scores = f"results/scores/{method}/synth.csv"
        pd.testing.assert_frame_equal(pd.read_csv(out_local / scores), pd.read_csv(out_cluster / scores))
