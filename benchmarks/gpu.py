"""Every GPU figure of the cluster path, in one run of under 10 minutes on a machine with CUDA:

1. TV-L1 optical flow at 854x480: pairs/s on CUDA, batched (1, 8 and 16 pairs per call), against the
   CPU (every core);
2. its end-point error on the Middlebury pairs (../shared/data/flow_gt/middlebury) on CUDA and on the
   CPU, and the difference;
3. appearance-stream training with configs/davis-gpu.yaml's schedule (ResNet-101, 321 px crops,
   batch 10), with and without AMP: iterations/s, on a ResNet-101 file with seeded random weights;
4. appearance inference at 854x480 (batch 8, as the config): frames/s;
5. the peak GPU memory of each of these;
6. configs/davis-gpu.yaml on the miniature of its datasets (fusionseg make-miniature) with every device
   cuda, for the time left: how far it gets, and the time per rule.

    python benchmarks/gpu.py [--out benchmarks/results/gpu.md] [--data ../shared/data] [--budget-s 570]

Writes the tables to --out (benchmarks/results/gpu.md). Frames are rendered (fusionseg.datasets.synthetic),
so nothing but the Middlebury pairs is read from disk. Without a CUDA device it measures nothing: it prints
one line and exits with status 77, the "skipped" status of automake and meson (0 is success, 1 failure).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's fusionseg, installed or not (as the workflow's rules run it)
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"
NO_CUDA_EXIT = 77
SIZE = (480, 854)  # height, width: DAVIS 480p
FLOW_BATCHES = (1, 8, 16)
TRAIN_ITERATIONS = 25
WARMUP_ITERATIONS = 5  # cuDNN picks its algorithms in the first iterations
INFERENCE_FRAMES = 48
MIDDLEBURY = ("Dimetrodon", "Grove2", "RubberWhale")
Result = TypeVar("Result")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: idle threads sleep
    import torch

    if not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device (torch.cuda.is_available() is False); nothing measured")
        return NO_CUDA_EXIT
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fusionseg-gpu-") as work:
        sections = measure_all(Path(work), args.data, deadline=started + args.budget_s)
    write_report(args.out, sections, time.monotonic() - started)
    print(f"benchmarks/gpu.py: wrote {args.out} in {time.monotonic() - started:.0f} s")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu.md", help="the Markdown report")
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding flow_gt/middlebury")
    parser.add_argument("--budget-s", type=float, default=570, help="the whole run stops within this (the pipeline slice gets what is left)")
    return parser.parse_args(argv)


def measure_all(work: Path, data: Path, deadline: float) -> list[tuple[str, pd.DataFrame, str]]:
    """(title, table, note) per measurement, in the order of the module docstring."""
    frames = rendered_frames(INFERENCE_FRAMES + 1)
    checkpoint = work / "resnet101-random.pth"
    from fusionseg.datasets.miniature import write_resnet101_checkpoint

    write_resnet101_checkpoint(checkpoint, seed=0)
    appearance = davis_gpu_section("appearance")
    model, training = training_speed(work, checkpoint, appearance)
    return [
        ("TV-L1 flow at 854x480", flow_speed(frames), "CPU: one pair per call, every core; peak memory: CUDA only"),
        ("TV-L1 end-point error on Middlebury, CUDA against CPU", flow_epe(data), "EPE in pixels over the pixels with known flow"),
        ("Appearance-stream training (ResNet-101, 321 px, batch 10)", training,
         f"iterations/s: median over iterations {WARMUP_ITERATIONS + 1}..{TRAIN_ITERATIONS} (the first ones tune cuDNN)"),
        ("Appearance inference at 854x480", inference_speed(work, model, frames), "the second of two passes (the first tunes cuDNN), model loading included"),
        ("configs/davis-gpu.yaml on the miniature, device cuda", *pipeline_slice(work, deadline)),
    ]  # fmt: skip


def rendered_frames(count: int) -> list[np.ndarray]:
    """RGB frames of one rendered clip at 854x480: textured objects moving over a textured background."""
    from fusionseg.datasets.synthetic import SynthParams, render_clip

    return list(render_clip("gpu-benchmark", SynthParams(count, SIZE[0], SIZE[1], max_objects=2, seed=0)).frames)


def davis_gpu_section(section: str) -> dict:
    return yaml.safe_load((REPO / "configs" / "davis-gpu.yaml").read_text())[section]


def peak_memory_mb(run: Callable[[], Result]) -> tuple[Result, float]:
    """run()'s result and the peak GPU memory it allocated (MB)."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    result = run()
    torch.cuda.synchronize()
    return result, torch.cuda.max_memory_allocated() / 2**20


def flow_speed(frames: list[np.ndarray]) -> pd.DataFrame:
    import torch

    from fusionseg.flow.methods import make_backend, to_grey

    grey = [to_grey(frame) for frame in frames]
    rows = []
    for device, batch in [("cuda", b) for b in FLOW_BATCHES] + [("cpu", 1)]:
        if device == "cpu":
            torch.set_num_threads(os.cpu_count() or 1)
        backend = make_backend("tvl1", {}, device)
        calls = [(grey[i : i + batch], grey[i + 1 : i + batch + 1]) for i in range(0, 2 * batch if device == "cpu" else 16, batch)]
        backend(*calls[0])  # warm-up: kernels, memory pool
        (seconds, peak) = peak_memory_mb(lambda: _timed(lambda: [backend(*call) for call in calls]))
        pairs = sum(len(first) for first, _ in calls)
        rows.append({"device": device, "pairs per call": batch, "pairs/s": pairs / seconds,
                     "peak GPU memory (MB)": peak if device == "cuda" else float("nan")})  # fmt: skip
    table = pd.DataFrame(rows)
    table["speed-up over the CPU"] = table["pairs/s"] / table.loc[table["device"] == "cpu", "pairs/s"].iloc[0]
    return table


def _timed(run: Callable[[], object]) -> float:
    import torch

    start = time.perf_counter()
    run()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def flow_epe(data: Path) -> pd.DataFrame:
    from fusionseg.io.flo import read_flo
    from fusionseg.flow.methods import make_backend, to_grey
    from fusionseg.io import read_image

    root = data / "flow_gt" / "middlebury"
    if not root.is_dir():
        return pd.DataFrame([{"pair": f"no Middlebury pairs in {root}"}])
    backends = {device: make_backend("tvl1", {}, device) for device in ("cuda", "cpu")}
    rows = []
    for name in MIDDLEBURY:
        first, second = (to_grey(read_image(root / name / f"frame1{k}.png")) for k in (0, 1))
        truth = read_flo(root / name / "flow10.flo")
        known = (np.abs(truth) < 1e9).all(axis=-1)
        epe = {device: _epe(backend([first], [second])[0], truth, known) for device, backend in backends.items()}
        rows.append({"pair": name, "EPE cuda": epe["cuda"], "EPE cpu": epe["cpu"], "cuda - cpu": epe["cuda"] - epe["cpu"]})
    return pd.DataFrame(rows)


def _epe(flow: np.ndarray, truth: np.ndarray, known: np.ndarray) -> float:
    return float(np.linalg.norm(flow - truth, axis=-1)[known].mean())


def training_speed(work: Path, checkpoint: Path, appearance: dict) -> tuple[Path, pd.DataFrame]:
    """Iterations/s of train_stream, the workflow's trainer, with and without AMP; returns the AMP model."""
    from fusionseg.config import section_params
    from fusionseg.datasets.image_cache import ImageMaskSamples
    from fusionseg.train.streams import train_stream

    samples = ImageMaskSamples(image_cache(work))
    rows = []
    for amp in (True, False):
        out = work / f"appearance-amp-{amp}.pt"
        settings = {**appearance, "weights": str(checkpoint), "iterations": TRAIN_ITERATIONS, "amp": amp, "device": "cuda",
                    "checkpoint_every": TRAIN_ITERATIONS, "log_every": TRAIN_ITERATIONS}  # fmt: skip
        _, peak = peak_memory_mb(lambda: train_stream("appearance", samples, section_params("appearance", settings), out))
        log = pd.read_csv(f"{out}.log.csv")
        images_per_s = log.loc[log["iteration"] > WARMUP_ITERATIONS, "images_per_s"].median()
        rows.append({"AMP": amp, "iterations/s": images_per_s / settings["batch_size"], "images/s": images_per_s,
                     "peak GPU memory (MB)": peak, "estimated 20,000 iterations (h)": 20000 * settings["batch_size"] / images_per_s / 3600})  # fmt: skip
    return work / "appearance-amp-True.pt", pd.DataFrame(rows)


def image_cache(work: Path) -> Path:
    """The training cache (manifest) of a miniature PASCAL VOC + SBD at 854x480 (train_aug)."""
    from fusionseg.datasets.image_cache import write_image_cache
    from fusionseg.datasets.images import ImageSetOptions, open_image_set
    from fusionseg.datasets.miniature import SBD, VOC, MiniatureSpec, write_sbd, write_voc

    spec = MiniatureSpec(width=SIZE[1], height=SIZE[0])
    write_voc(work / VOC, spec)
    write_sbd(work / SBD, spec)
    image_set = open_image_set("pascal-voc", work / VOC, ImageSetOptions(split="train_aug", sbd_root=str(work / SBD)))
    write_image_cache(image_set, work / "images")
    return work / "images" / "manifest.csv"


def inference_speed(work: Path, model: Path, frames: list[np.ndarray]) -> pd.DataFrame:
    """infer_stream, the workflow's inference (model loading and JPEG decoding included)."""
    from fusionseg.infer.run import infer_stream
    from fusionseg.io import write_image

    paths = [work / "frames" / f"{i:05d}.jpg" for i in range(INFERENCE_FRAMES)]
    for path, frame in zip(paths, frames):
        write_image(path, frame)
    batch = davis_gpu_section("inference")["batch_size"]

    def one_pass() -> float:
        return _timed(lambda: infer_stream(model, "appearance", paths, work / "probs.h5", batch, "cuda"))

    one_pass()
    seconds, peak = peak_memory_mb(one_pass)
    return pd.DataFrame([{"frames": len(paths), "batch": batch, "frames/s": len(paths) / seconds, "peak GPU memory (MB)": peak}])


def pipeline_slice(work: Path, deadline: float) -> tuple[pd.DataFrame, str]:
    """Snakemake on the miniature with every device cuda until done or the deadline: time per rule."""
    from fusionseg.datasets.miniature import write_miniature

    write_miniature(work / "run" / "miniature")
    cuda = {section: {"device": "cuda"} for section in ("flow", "appearance", "motion", "fusion", "inference")}
    (work / "cuda.yaml").write_text(yaml.safe_dump(cuda))
    configs = [REPO / "configs" / "davis-gpu.yaml", REPO / "configs" / "davis-gpu-miniature.yaml", work / "cuda.yaml"]
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(work / "run"),
               "--cores", str(os.cpu_count() or 1), "--configfile", *map(str, configs)]  # fmt: skip
    seconds, finished, progress = _run_until(command, deadline, work / "run.log")
    note = f"{'finished' if finished else 'stopped at the time limit'} after {seconds:.0f} s; {progress}"
    return _rule_times(work / "run" / "output" / "davis-gpu" / "benchmarks"), note


def _run_until(command: list[str], deadline: float, log: Path) -> tuple[float, bool, str]:
    """Run `command` until it ends or `deadline`; (seconds, ended by itself, its last progress line)."""
    start = time.monotonic()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            _stop(process)
    done = [line for line in log.read_text().splitlines() if "steps (" in line and "done" in line]
    finished = process.returncode == 0
    return time.monotonic() - start, finished, done[-1].strip() if done else "no step finished"


def _stop(process: subprocess.Popen) -> None:
    """SIGINT first (Snakemake then stops its jobs and cleans up), the whole group killed if it lingers."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _rule_times(benchmarks: Path) -> pd.DataFrame:
    """Jobs and seconds per rule from the jobs' Snakemake benchmark files (compute_flow has none)."""
    rows = [{"rule": tsv.relative_to(benchmarks).parts[0], "s": pd.read_csv(tsv, sep="\t")["s"].iloc[0]} for tsv in benchmarks.rglob("*.tsv")]
    if not rows:
        return pd.DataFrame([{"rule": "no job finished"}])
    table = pd.DataFrame(rows).groupby("rule")["s"].agg(jobs="count", total_s="sum", max_s="max").reset_index()
    return table.sort_values("total_s", ascending=False)


def write_report(path: Path, sections: list[tuple[str, pd.DataFrame, str]], seconds: float) -> None:
    import torch

    lines = [
        "# GPU figures (`python benchmarks/gpu.py`)",
        "",
        f"- GPU: {torch.cuda.get_device_name()} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB); "
        f"CPU: {os.cpu_count()} cores; torch {torch.__version__}, CUDA {torch.version.cuda}; {platform.node()}",
        f"- whole run: {seconds:.0f} s",
    ]
    for title, table, note in sections:
        lines += ["", f"## {title}", "", note, "", table.to_markdown(index=False, floatfmt=".3g")]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
