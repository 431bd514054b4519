"""Running this repository's Snakefile from tests: real runs, dry runs and their job tables."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DAVIS_GPU = REPO / "configs" / "davis-gpu.yaml"
# configs/davis-gpu.yaml on the miniature of its datasets (fusionseg make-miniature), on the CPU.
MINIATURE_OVERLAY = REPO / "configs" / "davis-gpu-miniature.yaml"
RUN_TIMEOUT_S = 900
DRY_RUN_TIMEOUT_S = 180


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_snakemake(
    workdir: Path,
    *args: str,
    targets: tuple[str, ...] = (),
    timeout: float = RUN_TIMEOUT_S,
    env: dict | None = None,
    configfiles: tuple[Path, ...] = (),
) -> subprocess.CompletedProcess:
    """Snakemake on this repository's Snakefile, in `workdir` with its config.yaml (or `configfiles`, merged
    in order); fails loudly, with the jobs' logs."""
    command = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", *map(str, configfiles or (workdir / "config.yaml",)),
        *args,
        "--", *targets,
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if result.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-2000:]}" for p in sorted(workdir.glob("*/**/logs/**/*.log")))
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}\n{logs}")
    return result


def dry_run(workdir: Path, *targets: str) -> str:
    """What `snakemake --dry-run` says it would do (jobs, with the reason for each)."""
    output = run_snakemake(workdir, "--dry-run", targets=targets, timeout=DRY_RUN_TIMEOUT_S)
    return output.stdout + output.stderr


def job_counts(dry_run_text: str) -> dict[str, int]:
    """Jobs per rule from a dry run's "Job stats" table; {} when nothing is to do."""
    if "Nothing to be done" in dry_run_text:
        return {}
    table = dry_run_text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.M))
    counts.pop("total", None)
    return {rule: int(n) for rule, n in counts.items()}


def planned_jobs(workdir: Path, *targets: str) -> dict[str, int]:
    return job_counts(dry_run(workdir, *targets))


