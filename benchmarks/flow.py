"""Optical flow benchmark: end-point error and time per pair of every backend, side by side.

Ground truth from ../shared/data/flow_gt (Middlebury Dimetrodon, Grove2, RubberWhale; 5 FlyingChairs
pairs; one KITTI-2015 pair, scored on its valid pixels). Every method runs in the same process at the
same thread count (torch and OpenCV), so the comparison is fair on a shared machine. Peak memory per
pair at DAVIS size (854x480) is measured in a fresh subprocess per method (VmHWM; tracemalloc
does not see torch's allocations). `--gpu` adds batched pairs/s at 854x480 when CUDA is present.

    python benchmarks/flow.py [--threads 2] [--gpu]

Writes benchmarks/results/flow.csv (one row per method and pair) and flow.md (the summary tables).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

# Idle OpenMP threads sleep instead of spinning: on a machine shared with other jobs, spinning torch
# threads slow a 2-thread run several-fold (measured: 10 TV-L1 iterations 219 ms spinning, 41 ms passive
# at load 6.4 on 2 cores). Must be set before torch is imported; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"

# (label, method, params): OpenCV's DualTVL1 at scale step 0.5 (its default 0.8 fails on large motion).
BACKENDS = [
    ("tvl1 (ours, torch)", "tvl1", {}),
    ("tvl1-opencv (scale 0.5)", "tvl1-opencv", {"scale_step": 0.5}),
    ("dis medium", "dis", {"preset": "medium"}),
    ("dis fast", "dis", {"preset": "fast"}),
    ("farneback", "farneback", {}),
]
OURS, OPENCV_TVL1 = BACKENDS[0][0], BACKENDS[1][0]
DAVIS_PAIR = ("davis2016/JPEGImages/480p/blackswan/00000.jpg", "davis2016/JPEGImages/480p/blackswan/00001.jpg")


def ground_truth_pairs(data: Path) -> list[dict]:
    """Every scored pair: dataset, name, the two image paths, the flow and its validity mask."""
    from fusionseg.flow.flo import read_flo, read_kitti_flow

    pairs = []
    for name in ("Dimetrodon", "Grove2", "RubberWhale"):
        folder = data / "flow_gt" / "middlebury" / name
        flow = read_flo(folder / "flow10.flo")
        pairs.append(_pair("Middlebury", name, folder / "frame10.png", folder / "frame11.png", flow))
    chairs = data / "flow_gt" / "flyingchairs"
    for gt in sorted(chairs.glob("*-gt.flo")):
        stem = gt.name.removesuffix("-gt.flo")
        pairs.append(_pair("FlyingChairs", stem, chairs / f"{stem}-img0.ppm", chairs / f"{stem}-img1.ppm", read_flo(gt)))
    kitti = data / "flow_gt" / "kitti2015"
    flow, valid = read_kitti_flow(kitti / "kitti_occ_000010_10.png")
    pairs.append(_pair("KITTI-2015", "000010", kitti / "kitti_000010_10.png", kitti / "kitti_000010_11.png", flow, valid))
    return pairs


def _pair(dataset: str, name: str, first: Path, second: Path, flow: np.ndarray, valid: np.ndarray | None = None) -> dict:
    from fusionseg.flow.methods import to_grey
    from fusionseg.io import read_image

    known = (np.abs(flow) < 1e9).all(axis=-1)
    return {
        "dataset": dataset,
        "pair": name,
        "images": [to_grey(read_image(first)), to_grey(read_image(second))],
        "flow": flow,
        "valid": known if valid is None else valid & known,
    }


def score_backends(pairs: list[dict], repeats: int) -> pd.DataFrame:
    """EPE and best-of-`repeats` wall time of every backend on every pair (one warm-up call first)."""
    from fusionseg.flow.methods import make_backend

    rows = []
    for label, method, params in BACKENDS:
        backend = make_backend(method, params, "cpu")
        backend([pairs[0]["images"][0]], [pairs[0]["images"][1]])
        for pair in pairs:
            seconds, flow = _best_time(backend, pair["images"], repeats)
            error = np.linalg.norm(flow - pair["flow"], axis=-1)[pair["valid"]]
            rows.append({"method": label, "dataset": pair["dataset"], "pair": pair["pair"],
                         "epe": float(error.mean()), "seconds": seconds})
            print(f"{label:26s} {pair['dataset']:13s} {pair['pair']:12s} EPE {error.mean():7.3f}  {seconds:6.2f} s", flush=True)
    return pd.DataFrame(rows)


def _best_time(backend, images: list[np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    best, flow = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        flow = backend([images[0]], [images[1]])[0]
        best = min(best, time.perf_counter() - start)
    return best, flow


def measure_memory(data: Path, threads: int) -> pd.DataFrame:
    """Peak resident memory and time of one 854x480 pair, each method in a fresh interpreter."""
    rows = []
    for label, method, params in BACKENDS:
        command = [sys.executable, __file__, "--memory-probe", json.dumps([method, params]), "--threads", str(threads), "--data", str(data)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        rows.append({"method": label, **result})
        print(f"{label:26s} 854x480: peak RSS {result['peak_rss_mb']:.0f} MB, {result['seconds']:.2f} s", flush=True)
    return pd.DataFrame(rows)


def memory_probe(spec: str, data: Path) -> None:
    """Child process of measure_memory: run one DAVIS pair, print peak RSS (MB) and time as JSON."""
    from fusionseg.flow.methods import make_backend, to_grey
    from fusionseg.io import read_image

    method, params = json.loads(spec)
    images = [to_grey(read_image(data / path)) for path in DAVIS_PAIR]
    backend = make_backend(method, params, "cpu")
    before_mb = _peak_rss_mb()
    start = time.perf_counter()
    backend([images[0]], [images[1]])
    seconds = time.perf_counter() - start
    peak_mb = _peak_rss_mb()
    print(json.dumps({"size": "854x480", "peak_rss_mb": peak_mb, "added_by_pair_mb": peak_mb - before_mb, "seconds": seconds}))


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM).

    Not getrusage's ru_maxrss: Linux carries it over from the parent through fork and exec, so a
    child of this (already large) benchmark process would report the parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line (not Linux?)")


def measure_gpu(data: Path, batch_size: int, rounds: int) -> pd.DataFrame:
    """Pairs per second of the torch TV-L1 on CUDA at 854x480, `batch_size` pairs per call."""
    import torch

    from fusionseg.flow.methods import make_backend, to_grey
    from fusionseg.io import read_image

    if not torch.cuda.is_available():
        print("--gpu: CUDA not available, GPU part skipped")
        return pd.DataFrame()
    first, second = (to_grey(read_image(data / path)) for path in DAVIS_PAIR)
    backend = make_backend("tvl1", {}, "cuda")
    backend([first] * batch_size, [second] * batch_size)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(rounds):
        backend([first] * batch_size, [second] * batch_size)
    torch.cuda.synchronize()
    rate = rounds * batch_size / (time.perf_counter() - start)
    print(f"GPU {torch.cuda.get_device_name()}: {rate:.1f} pairs/s at 854x480, batch {batch_size}")
    return pd.DataFrame([{"device": torch.cuda.get_device_name(), "batch_size": batch_size, "pairs_per_second": rate}])


def summarize(scores: pd.DataFrame) -> pd.DataFrame:
    """Methods x data sets: mean EPE per set (Middlebury per sequence too) and mean time per pair."""
    middlebury = scores[scores.dataset == "Middlebury"].pivot(index="method", columns="pair", values="epe")
    by_set = scores.groupby(["method", "dataset"]).epe.mean().unstack()
    table = pd.concat([middlebury, by_set[["Middlebury", "FlyingChairs", "KITTI-2015"]]], axis=1)
    table = table.add_prefix("EPE ")
    table["seconds per pair"] = scores.groupby("method").seconds.mean()
    return table.loc[[label for label, _, _ in BACKENDS]]


def bar_checks(summary: pd.DataFrame) -> list[str]:
    """The quality bar, line by line: ours vs OpenCV's DualTVL1 on each set and on time."""
    lines = []
    for column in [c for c in summary.columns if c.startswith("EPE ")]:
        ours, theirs = summary.loc[OURS, column], summary.loc[OPENCV_TVL1, column]
        lines.append(f"- {column}: ours {ours:.3f} vs OpenCV {theirs:.3f}: {'met' if ours <= theirs else 'NOT met'}")
    ours, theirs = summary.loc[OURS, "seconds per pair"], summary.loc[OPENCV_TVL1, "seconds per pair"]
    lines.append(f"- time per pair: ours {ours:.2f} s vs OpenCV {theirs:.2f} s: {'met' if ours < theirs else 'NOT met'}")
    return lines


def write_results(scores: pd.DataFrame, memory: pd.DataFrame, gpu: pd.DataFrame, threads: int, load: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    table = pd.concat([scores.assign(kind="pair"), memory.assign(kind="memory_854x480"), gpu.assign(kind="gpu")])
    table.to_csv(RESULTS / "flow.csv", index=False)
    summary = summarize(scores)
    parts = [
        "# Optical flow benchmark",
        "",
        f"`python benchmarks/flow.py --threads {threads}`; torch and OpenCV both at {threads} thread(s), CPU, "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}. "
        f"Load average before the run: {load}. End-point error is the mean over valid pixels; time is the "
        "best of the repeats per pair, averaged over all pairs.",
        "",
        summary.to_markdown(floatfmt=".3f"),
        "",
        "## Bar (torch TV-L1 vs OpenCV DualTVL1 at scale step 0.5)",
        "",
        *bar_checks(summary),
        "",
        "## One 854x480 pair per method in a fresh process (peak resident memory of the whole process, and how much the pair raised it above the peak after imports and set-up)",
        "",
        memory.to_markdown(index=False, floatfmt=".2f"),
    ]
    if not gpu.empty:
        parts += ["", "## GPU (batched)", "", gpu.to_markdown(index=False, floatfmt=".1f")]
    (RESULTS / "flow.md").write_text("\n".join(parts) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads (equal)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per pair (the best counts)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--gpu", action="store_true", help="also measure batched pairs/s on CUDA")
    parser.add_argument("--gpu-batch", type=int, default=8)
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if args.memory_probe:
        memory_probe(args.memory_probe, args.data)
        return
    if not (args.data / "flow_gt").is_dir():
        sys.exit(f"{args.data / 'flow_gt'}: ground truth not found (pass --data)")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    scores = score_backends(ground_truth_pairs(args.data), args.repeats)
    memory = measure_memory(args.data, args.threads)
    gpu = measure_gpu(args.data, args.gpu_batch, rounds=5) if args.gpu else pd.DataFrame()
    write_results(scores, memory, gpu, args.threads, load)
    print(summarize(scores).to_string(float_format=lambda x: f"{x:.3f}"))
    print("\n".join(bar_checks(summarize(scores))))


if __name__ == "__main__":
    main()
