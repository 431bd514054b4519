"""`fusionseg segment` end to end on one video: frames per second (flow included) and peak memory.

The command runs in a fresh subprocess, as a user would run it; it reports its own peak resident
memory (VmHWM: getrusage's ru_maxrss would carry the parent's peak over through fork). Time is the
subprocess's wall clock from start to exit (imports, bundle check, frames, flow, both streams, fusion,
masks, overlay video, report); the per-step seconds come from the sequence's segment.json.

Without --bundle it measures a stand-in: a bundle of untrained models of the architecture and input
convention that configs/davis-cpu.yaml trains (EfficientNet-Lite0 streams, TV-L1 flow with default
parameters, per-frame colour coding, working size 427): untrained weights cost the same time.

    python benchmarks/segment.py [--video ../shared/data/videos/bikes.mp4] [--bundle BUNDLE] [--threads 2]

Writes benchmarks/results/segment.csv (one row per run) and segment.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
VIDEO = REPO.parent / "shared" / "data" / "videos" / "bikes.mp4"
STAND_IN_CONFIG = REPO / "configs" / "davis-cpu.yaml"
STEPS = ("frames", "flow", "appearance", "motion", "fusion")


def stand_in_bundle(folder: Path) -> Path:
    """A bundle of untrained models as configs/davis-cpu.yaml would train them (same speed)."""
    import torch
    import yaml

    from fusionseg.models.bundle import export_bundle
    from fusionseg.models.checkpoint import save_checkpoint
    from fusionseg.models.fusion import FusionModel
    from fusionseg.models.stream import StreamModel

    config = yaml.safe_load(STAND_IN_CONFIG.read_text())
    torch.manual_seed(0)
    for stream in ("appearance", "motion"):
        model = StreamModel(config[stream]["backbone"], "none", stream)
        save_checkpoint(folder / "models" / f"{stream}.pt", model, config[stream], 0)
    save_checkpoint(folder / "models" / "fusion.pt", FusionModel(), config["fusion"], 0)
    bundle = folder / "stand-in.zip"
    # Dataset roots in the config are relative to the repository (where Snakemake runs).
    os.chdir(REPO)
    export_bundle(STAND_IN_CONFIG, bundle, folder / "models", scores=False, licence="untrained stand-in for timing only")
    return bundle


def run_segment(video: Path, bundle: Path, out: Path, threads: int, max_side: int | None) -> dict:
    """`fusionseg segment` in a fresh process: wall seconds, its peak memory and its segment.json."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(video), str(bundle), str(out), str(threads)]
    if max_side:
        command.append(str(max_side))
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"fusionseg segment failed:\n{result.stderr[-3000:]}")
    peak = json.loads(result.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    record = json.loads((out / video.stem / "segment.json").read_text())
    return {"seconds": seconds, "peak_rss_mb": peak, "record": record}


def worker(video: str, bundle: str, out: str, threads: str, max_side: str | None = None) -> None:
    """The measured process: the command itself, then this process's peak resident memory."""
    from fusionseg.cli import main

    argv = ["segment", video, "--models", bundle, "--out", out, "--threads", threads, "--device", "cpu"]
    status = main(argv + (["--max-side", max_side] if max_side else []))
    if status:
        sys.exit(status)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line (not Linux?)")


def result_row(video: Path, bundle_label: str, threads: int, run: dict, load_before: str, load_after: str) -> dict:
    record = run["record"]
    row = {
        "video": video.name,
        "frames": record["frames"],
        "source_size": "x".join(map(str, record["source_size"])),
        "working_size": "x".join(map(str, record["working_size"])),
        "bundle": bundle_label,
        "bundle_sha256": record["models"]["bundle_sha256"][:12],
        "threads": threads,
        "wall_s": round(run["seconds"], 1),
        "fps": round(record["frames"] / run["seconds"], 3),
        "peak_rss_mb": round(run["peak_rss_mb"], 1),
        "load_before": load_before,
        "load_after": load_after,
    }
    row.update({f"{step}_s": record["step_seconds"].get(step) for step in STEPS})
    return row


def write_results(row: dict, command: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([row])
    csv = RESULTS / "segment.csv"
    history = pd.concat([pd.read_csv(csv), table]) if csv.is_file() else table
    history.to_csv(csv, index=False)
    steps = {step: row[f"{step}_s"] for step in STEPS}
    rest = row["wall_s"] - sum(steps.values())
    lines = [
        "# `fusionseg segment` end to end",
        "",
        f"`{command}`; CPU, {row['threads']} thread(s), OMP_WAIT_POLICY passive (the command sets it). "
        f"Load average (1, 5, 15 min) before the run: {row['load_before']}; after: {row['load_after']} "
        "(the machine is shared: other jobs slow these figures down).",
        "",
        f"Bundle: {row['bundle']} (sha256 {row['bundle_sha256']}...).",
        "",
        "| video | frames | source | working size | wall s | frames/s | peak memory MB |",
        "|---|---|---|---|---|---|---|",
        f"| {row['video']} | {row['frames']} | {row['source_size']} | {row['working_size']} | {row['wall_s']} | "
        f"{row['fps']} | {row['peak_rss_mb']} |",
        "",
        "Seconds per step (segment.json); the rest is start-up (imports, bundle check) and writing the "
        "masks, the overlay video and the report:",
        "",
        "| " + " | ".join([*STEPS, "rest"]) + " |",
        "|" + "---|" * (len(STEPS) + 1),
        "| " + " | ".join(f"{s:.1f}" for s in [*steps.values(), rest]) + " |",
        "",
        "Every run so far: `benchmarks/results/segment.csv`.",
    ]
    (RESULTS / "segment.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--bundle", type=Path, help="bundle to time (default: an untrained davis-cpu stand-in)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-side", type=int, help="working size (default: the bundle's)")
    parser.add_argument("--keep", type=Path, help="keep the outputs in this folder (default: a temporary one)")
    args = parser.parse_args()
    if not args.video.is_file():
        sys.exit(f"{args.video}: video not found (pass --video)")
    video, given, keep = (p.resolve() if p else None for p in (args.video, args.bundle, args.keep))
    with tempfile.TemporaryDirectory(prefix="segment-bench-") as scratch:
        bundle = given or stand_in_bundle(Path(scratch))
        label = str(args.bundle) if given else "untrained stand-in of the davis-cpu architecture (EfficientNet-Lite0, TV-L1, max_side 427)"
        out = keep or Path(scratch) / "out"
        load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        run = run_segment(video, bundle, out, args.threads, args.max_side)
        load_after = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    command = "python " + " ".join(["benchmarks/segment.py", *sys.argv[1:]])
    row = result_row(args.video, label, args.threads, run, load_before, load_after)
    write_results(row, command)
    print(pd.DataFrame([row]).T.to_string(header=False))


if __name__ == "__main__":
    main()
