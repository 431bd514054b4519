"""`fusionseg segment` end to end on one video: frames per second (flow included) and peak memory.

The command runs in a fresh subprocess, as a user would run it; it reports its own peak resident
memory (VmHWM: getrusage's ru_maxrss would carry the parent's peak over through fork) and the CPU
time it used (user + system, all its threads). Time is the subprocess's wall clock from start to exit
(imports, bundle check, frames, the steps of the bundle's default method and the Saliency row beside
it, masks, overlay videos, report); the
per-step seconds come from the sequence's segment.json. On a machine shared with other jobs the wall
clock mostly measures the others; CPU seconds per frame say what the command itself costs.

Two runs, one row each: the bundle's default method as a user runs it (the Saliency row computed
beside it), and `--method saliency` alone (U²-Netp per frame, what a background remover costs). The
video is first scaled to --size (default 640x360; not timed).

Without --bundle it measures a stand-in: a bundle of untrained models of the architecture and input
convention that configs/davis-cpu.yaml trains (its stream backbones and input sizes, TV-L1 flow with
default parameters, per-frame colour coding, working size 427): untrained weights cost the same time.

    python benchmarks/segment.py [--video ../shared/data/videos/bigbuckbunny.mp4] [--size 640x360] [--bundle BUNDLE] [--threads 2]

Writes benchmarks/results/segment.csv (one row per run) and segment.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from fusionseg.report.segmented import OVERLAY

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
VIDEO = REPO.parent / "shared" / "data" / "videos" / "bigbuckbunny.mp4"
STAND_IN_CONFIG = REPO / "configs" / "davis-cpu.yaml"
STEPS = ("frames", "flow", "appearance", "motion", "fusion", "tsn", "saliency")
SHEET = RESULTS / "segment.overlay.jpg"


def stand_in_bundle(folder: Path) -> Path:
    """A bundle of untrained models as configs/davis-cpu.yaml would train them (same speed)."""
    import torch
    import yaml

    from fusionseg.bundles.export import export_bundle
    from fusionseg.models.checkpoint import save_checkpoint
    from fusionseg.models.fusion import FusionModel
    from fusionseg.models.stream import build_stream

    config = yaml.safe_load(STAND_IN_CONFIG.read_text())
    torch.manual_seed(0)
    for stream in ("appearance", "motion"):
        model = build_stream(config[stream]["backbone"], "none", stream, config[stream].get("input_size"))
        save_checkpoint(folder / "models" / f"{stream}.pt", model, config[stream], 0)
    save_checkpoint(folder / "models" / "fusion.pt", FusionModel(), config["fusion"], 0)
    bundle = folder / "stand-in.zip"
    # Dataset roots in the config are relative to the repository (where Snakemake runs).
    os.chdir(REPO)
    export_bundle(STAND_IN_CONFIG, bundle, folder / "models", scores=False, licence="untrained stand-in for timing only")
    return bundle


def run_segment(video: Path, bundle: Path, out: Path, threads: int, method: str, max_side: int | None) -> dict:
    """`fusionseg segment` in a fresh process (`method` "default": the bundle's, with the Saliency row
    beside): wall seconds, its peak memory and its segment.json."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(video), str(bundle), str(out), str(threads), method]
    if max_side:
        command.append(str(max_side))
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"fusionseg segment failed:\n{result.stderr[-3000:]}")
    usage = json.loads(result.stdout.strip().splitlines()[-1])
    record = json.loads((out / video.stem / "segment.json").read_text())
    return {"seconds": seconds, **usage, "record": record}


def worker(video: str, bundle: str, out: str, threads: str, method: str, max_side: str | None = None) -> None:
    """The measured process: the command itself, then this process's peak resident memory."""
    from fusionseg.cli import main

    argv = ["segment", video, "--models", bundle, "--out", out, "--threads", threads, "--device", "cpu"]
    argv += [] if method == "default" else ["--method", method]
    status = main(argv + (["--max-side", max_side] if max_side else []))
    if status:
        sys.exit(status)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "cpu_s": usage.ru_utime + usage.ru_stime}))


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
        "method": record["method"],
        "threads": threads,
        "wall_s": round(run["seconds"], 1),
        "fps": round(record["frames"] / run["seconds"], 3),
        "cpu_s": round(run["cpu_s"], 1),
        "cpu_s_per_frame": round(run["cpu_s"] / record["frames"], 3),
        "peak_rss_mb": round(run["peak_rss_mb"], 1),
        "load_before": load_before,
        "load_after": load_after,
    }
    row.update({f"{step}_s": record["step_seconds"].get(step) for step in STEPS})
    return row


def append_runs(rows: list[dict]) -> pd.DataFrame:
    """segment.csv with these runs added; returns every run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    csv = RESULTS / "segment.csv"
    runs = pd.concat([pd.read_csv(csv), pd.DataFrame(rows)]) if csv.is_file() else pd.DataFrame(rows)
    runs.to_csv(csv, index=False)
    return runs


def write_markdown(runs: pd.DataFrame) -> None:
    """segment.md: every run's figures and its seconds per step."""
    runs = runs.assign(rest_s=runs["wall_s"] - runs[[f"{step}_s" for step in STEPS]].sum(axis=1))
    runs = runs.assign(best_fps=runs["frames"] * runs["threads"] / runs["cpu_s"])
    main_columns = ["command", "bundle", "method", "video", "frames", "source_size", "working_size", "threads", "wall_s", "fps",
                    "cpu_s_per_frame", "best_fps", "peak_rss_mb", "load_before", "load_after"]  # fmt: skip
    lines = [
        "# `fusionseg segment` end to end",
        "",
        (
            "CPU, OMP_WAIT_POLICY passive (the command sets it). The machine is shared with other jobs: the load "
            "average (1, 5, 15 min) before and after each run says how much; the wall clock (`wall_s`, `fps`) is "
            "the measurement, `best_fps` = frames x threads / CPU seconds is what the same CPU work would give "
            "with the cores to itself (an estimate). Peak memory is the command's VmHWM."
        ),
        "",
        runs[main_columns].to_markdown(index=False, floatfmt=".3g"),
        "",
        (
            "Seconds per step (segment.json); `rest` is start-up (imports, bundle check) and writing the masks, "
            "the overlay video and the report:"
        ),
        "",
        runs[["bundle", "method", *[f"{step}_s" for step in STEPS], "rest_s"]].to_markdown(index=False, floatfmt=".1f"),
        "",
        f"Overlay frames of the last run: `{SHEET.name}` (frames 0, 1/3, 2/3 and last of {OVERLAY}).",
    ]
    (RESULTS / "segment.md").write_text("\n".join(lines) + "\n")


def write_sheet(overlay: Path) -> None:
    """Four frames of the overlay video, stacked, as a JPEG beside the results."""
    import cv2
    import numpy as np

    from fusionseg.report.figures import video_frames

    frames = [rgb for _, rgb in video_frames(overlay, 4)]
    cv2.imwrite(str(SHEET), cv2.cvtColor(np.concatenate(frames), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])


def scaled_video(video: Path, size: tuple[int, int], out: Path) -> Path:
    """`video` re-encoded at `size` (width, height) into `out`, named as the source."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    path = out / video.name
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    frames = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        frames += 1
    capture.release()
    writer.release()
    if not frames:
        sys.exit(f"{video}: no frame could be read")
    return path


def as_typed(arg: str) -> str:
    """A command-line word as a user of this repository types it: an absolute path inside the
    repository becomes relative to its root, one outside it its name alone (this machine's folders,
    such as a scratch bundle, mean nothing elsewhere); `--option=PATH` likewise."""
    option, equals, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    path = Path(value)
    if value and path.is_absolute():
        value = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name
    return option + equals + value


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--size", default="640x360", help="scale the video to WIDTHxHEIGHT first (not timed); 'source' keeps it")
    parser.add_argument("--bundle", type=Path, help="bundle to time (default: an untrained davis-cpu stand-in)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-side", type=int, help="working size (default: the bundle's)")
    parser.add_argument("--keep", type=Path, help="keep the outputs in this folder (default: a temporary one)")
    parser.add_argument("--label", help="what the bundle is, for the results (default: its path)")
    args = parser.parse_args()
    if not args.video.is_file():
        sys.exit(f"{args.video}: video not found (pass --video)")
    video, given, keep = (p.resolve() if p else None for p in (args.video, args.bundle, args.keep))
    command = shlex.join(["python", "benchmarks/segment.py", *map(as_typed, sys.argv[1:])])
    rows = []
    with tempfile.TemporaryDirectory(prefix="segment-bench-") as scratch:
        if args.size != "source":
            width, height = (int(x) for x in args.size.split("x"))
            video = scaled_video(video, (width, height), Path(scratch))
        bundle = given or stand_in_bundle(Path(scratch))
        label = args.label or as_typed(str(args.bundle)) if given else "untrained stand-in of the davis-cpu architecture"
        out = keep or Path(scratch) / "out"
        for method in ("default", "saliency"):
            method_out = out if method == "default" else out / "saliency-only"
            load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            run = run_segment(video, bundle, method_out, args.threads, method, args.max_side)
            load_after = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            if method == "default":
                write_sheet(out / video.stem / OVERLAY)
            rows.append({"command": command, **result_row(video, label, args.threads, run, load_before, load_after)})
    write_markdown(append_runs(rows))
    print(pd.DataFrame(rows).T.to_string(header=False))

if __name__ == "__main__":
    main()
