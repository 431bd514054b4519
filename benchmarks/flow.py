"""Optical flow benchmark: end-point error and time per pair of every backend, side by side.

Ground truth from ../shared/data/flow_gt: Middlebury (Dimetrodon, Grove2, RubberWhale), 5 FlyingChairs
pairs, one KITTI-2015 pair (its valid pixels) and MPI-Sintel alley_1, cave_2, market_5 in the clean
and the final pass (valid pixels, and non-occluded ones apart). Every method runs in the same process
at the same thread count (torch and OpenCV), so the comparison is fair on a shared machine. Also:
seconds per pair at 427x240 of the TV-L1 before and after its last change (loaded from git), batch
independence, peak memory per 854x480 pair in a fresh subprocess per method (VmHWM; tracemalloc does
not see torch's allocations), and with `--gpu` batched pairs/s at 854x480 when CUDA is present.
`--ablation` adds the TV-L1 ablation on the tuning set (`dev_pairs`) and every scored set, and
per-level errors. `--segflow MODEL` adds the flow branch of a trained SegFlow (flow method `segflow`)
on every pair it was not trained on (the model's `flow_pairs` sets are left out), beside TV-L1 and
OpenCV's DualTVL1 on the same pairs.

    python benchmarks/flow.py [--threads 2] [--ablation] [--gpu] [--segflow MODEL]

Writes benchmarks/results/flow.csv (every measurement; `kind` says which) and flow.md (the tables).

The pairs and their reading are the package's (`fusionseg.flow.ground_truth`: `ground_truth_pairs`, and
`dev_pairs`, rendered with `fusionseg.datasets.synthetic`), and so is the scoring
(`fusionseg.flow.evaluate`: `pair_errors`, `score_methods`); other flow methods are scored with those.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

# Idle OpenMP threads sleep instead of spinning: on a machine shared with other jobs, spinning torch
# threads slow a 2-thread run several-fold (measured: 10 TV-L1 iterations 219 ms spinning, 41 ms passive
# at load 6.4 on 2 cores). Must be set before torch is imported; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from fusionseg.flow.evaluate import Method, score_methods  # noqa: E402  (after OMP_WAIT_POLICY)
from fusionseg.flow.ground_truth import FlowPair, dev_pairs, ground_truth_pairs  # noqa: E402

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
# The TV-L1 before batch independence, size-driven pyramid depth and off-frame masking.
BEFORE_COMMIT = "c2d1707"
BEFORE = f"tvl1 before ({BEFORE_COMMIT})"
# DAVIS 240p sequences timed at 427x240 (their first two frames).
SPEED_PAIRS = 6
DAVIS_PAIR = ("davis2016/JPEGImages/480p/blackswan/00000.jpg", "davis2016/JPEGImages/480p/blackswan/00001.jpg")




def backend_method(method: str, params: dict) -> Method:
    """A fusionseg.flow backend (on the CPU) as a method: a pair's grey images -> flow (H, W, 2)."""
    from fusionseg.flow.methods import make_backend

    backend = make_backend(method, params, "cpu")
    return lambda pair: backend([pair.grey[0]], [pair.grey[1]])[0]


def solver_method(module: ModuleType, **params) -> Method:
    """A TV-L1 module (the current one or `previous_tvl1()`) with the given parameters as a method."""
    import torch

    solver_params = module.TVL1Params(**params)

    def run(pair: FlowPair) -> np.ndarray:
        first, second = (torch.from_numpy(image).float()[None, None] for image in pair.grey)
        return module.tvl1_flow(first, second, solver_params)[0].permute(1, 2, 0).numpy()

    return run


def previous_tvl1() -> ModuleType | None:
    """fusionseg/flow/tvl1.py as of BEFORE_COMMIT, loaded from git (None outside a git checkout)."""
    import importlib.util
    import tempfile

    shown = subprocess.run(["git", "-C", str(REPO), "show", f"{BEFORE_COMMIT}:fusionseg/flow/tvl1.py"],
                           check=False, capture_output=True, text=True)
    if shown.returncode != 0:
        print(f"git show {BEFORE_COMMIT}: {shown.stderr.strip()}; the 'before' rows are left out")
        return None
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "tvl1_before.py"
        source.write_text(shown.stdout)
        spec = importlib.util.spec_from_file_location("tvl1_before", source)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
    return module


def all_methods(before: ModuleType | None) -> dict[str, Method]:
    methods = {label: backend_method(method, params) for label, method, params in BACKENDS}
    if before is not None:
        methods = {OURS: methods[OURS], BEFORE: solver_method(before), **methods}
    return methods


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
    """Methods x data sets: mean EPE per set (valid pixels; `noc`: non-occluded ones, where the set
    marks them) and mean seconds per pair over all pairs. Methods in the order they were scored."""
    by_set = scores.groupby(["method", "dataset"], sort=False)
    table = by_set.epe.mean().unstack()
    with_occlusion = scores.dropna(subset=["epe_noc"]).groupby(["method", "dataset"], sort=False).epe_noc.mean().unstack()
    columns = {}
    for dataset in pd.unique(scores.dataset):
        columns[f"EPE {dataset}"] = table[dataset]
        if dataset in with_occlusion:
            columns[f"EPE {dataset} noc"] = with_occlusion[dataset]
    summary = pd.DataFrame(columns)
    summary["seconds per pair"] = scores.groupby("method", sort=False).seconds.mean()
    return summary.loc[pd.unique(scores.method)]


def pair_table(scores: pd.DataFrame, value: str = "epe") -> pd.DataFrame:
    """(dataset, pair) x method: `value` of every pair, methods in the order they were scored."""
    table = scores.pivot_table(index=["dataset", "pair"], columns="method", values=value, sort=False)
    return table[list(pd.unique(scores.method))].reset_index()


def bar_checks(scores: pd.DataFrame) -> list[str]:
    """The quality bar, line by line: ours vs OpenCV's DualTVL1 on every pair, every set and on time."""
    lines = []
    for _, row in pair_table(scores).iterrows():
        lines.append(_bar_line(f"{row.dataset} {row.pair}", row[OURS], row[OPENCV_TVL1], "{:.3f}"))
    summary = summarize(scores)
    for column in [c for c in summary.columns if c.startswith("EPE ")]:
        lines.append(_bar_line(f"mean {column}", summary.loc[OURS, column], summary.loc[OPENCV_TVL1, column], "{:.3f}"))
    seconds = summary["seconds per pair"]
    lines.append(_bar_line("seconds per pair", seconds[OURS], seconds[OPENCV_TVL1], "{:.2f} s"))
    return lines


def _bar_line(what: str, ours: float, theirs: float, number: str) -> str:
    verdict = "met" if ours <= theirs else "NOT met"
    return f"- {what}: ours {number.format(ours)} vs OpenCV {number.format(theirs)}: {verdict}"


def measure_davis_speed(data: Path, before: ModuleType | None, rounds: int) -> pd.DataFrame:
    """Seconds per pair of the TV-L1 before and after at 427x240 (DAVIS 240p, the CPU pipeline's size).

    The first two frames of the first DAVIS 240p sequences; the two versions alternate round by round
    so that the load of a shared machine falls on both alike; the best round of each counts, in wall
    time and in CPU time of this process (all threads: less sensitive to other jobs' load).
    """
    import torch

    from fusionseg.flow import tvl1
    from fusionseg.flow.methods import to_grey
    from fusionseg.io import read_image

    folders = sorted((data / "davis2016" / "JPEGImages" / "240p").iterdir())[:SPEED_PAIRS]
    pairs = [[torch.from_numpy(to_grey(read_image(folder / f"{i:05d}.jpg"))).float()[None, None] for i in (0, 1)]
             for folder in folders]
    versions = {OURS: tvl1} | ({BEFORE: before} if before is not None else {})
    wall, cpu = dict.fromkeys(versions, float("inf")), dict.fromkeys(versions, float("inf"))
    for _ in range(rounds):
        for label, module in versions.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            for first, second in pairs:
                module.tvl1_flow(first, second)
            wall[label] = min(wall[label], (time.perf_counter() - start) / len(pairs))
            cpu[label] = min(cpu[label], (time.process_time() - start_cpu) / len(pairs))
    rows = [{"method": label, "size": "427x240", "pairs": len(pairs), "rounds": rounds,
             "seconds": wall[label], "cpu_seconds": cpu[label]} for label in versions]
    for row in rows:
        print(f"{row['method']:26s} 427x240: {row['seconds']:.3f} s/pair, {row['cpu_seconds']:.3f} CPU s/pair", flush=True)
    return pd.DataFrame(rows)


def batch_independence(pairs: list[FlowPair], before: ModuleType | None) -> pd.DataFrame:
    """Largest flow difference (pixels) of each pair solved alone and in one batch with the others."""
    import torch

    from fusionseg.flow import tvl1

    firsts = torch.stack([torch.from_numpy(p.grey[0]).float()[None] for p in pairs])
    seconds = torch.stack([torch.from_numpy(p.grey[1]).float()[None] for p in pairs])
    rows = []
    for label, module in {OURS: tvl1, BEFORE: before}.items():
        if module is None:
            continue
        batched = module.tvl1_flow(firsts, seconds)
        for index, pair in enumerate(pairs):
            alone = module.tvl1_flow(firsts[index : index + 1], seconds[index : index + 1])[0]
            difference = float((alone - batched[index]).abs().max())
            rows.append({"method": label, "dataset": pair.dataset, "pair": pair.name, "batch_size": len(pairs),
                         "max_difference_px": difference})
            print(f"{label:26s} {pair.name}: alone vs batch of {len(pairs)}: {difference:.2e} px", flush=True)
    return pd.DataFrame(rows)


def per_level_errors(module: ModuleType, pair: FlowPair, **params) -> pd.DataFrame:
    """EPE of the flow after each pyramid level against the ground truth averaged down to that level,
    in pixels of the finest level (only where every averaged ground-truth pixel is valid).

    Runs the module's own coarse-to-fine loop step by step (its build_pyramid, _resize_flow and
    _solve_level, which the current and the previous version share).
    """
    import torch
    import torch.nn.functional as F

    solver_params = module.TVL1Params(**params)
    first, second = (torch.from_numpy(image).float()[None, None] for image in pair.grey)
    truth = torch.from_numpy(np.where(pair.valid[..., None], pair.flow, 0)).permute(2, 0, 1)[None]
    valid = torch.from_numpy(pair.valid.astype(np.float32))[None, None]
    rows = []
    with torch.inference_mode():
        pyramid0, pyramid1 = module.build_pyramid(first, solver_params), module.build_pyramid(second, solver_params)
        flow = torch.zeros_like(pyramid0[-1]).repeat(1, 2, 1, 1)
        for level in reversed(range(len(pyramid0))):
            size = pyramid0[level].shape[-2:]
            flow = module._resize_flow(flow, size)
            flow = module._solve_level(pyramid0[level], pyramid1[level], flow, solver_params)
            share = F.interpolate(valid, size=tuple(size), mode="area")
            averaged = F.interpolate(truth, size=tuple(size), mode="area") / share.clamp_min(1e-6)
            level_truth = averaged * torch.tensor([size[1] / truth.shape[-1], size[0] / truth.shape[-2]]).view(1, 2, 1, 1)
            scored = share[0, 0] > 0.99
            error = (flow - level_truth).norm(dim=1)[0][scored].mean() * truth.shape[-1] / size[1]
            rows.append({"level": level, "width": size[1], "size": f"{size[1]}x{size[0]}", "epe": float(error)})
    return pd.DataFrame(rows)


# Ablation rows: (label, "before" or "ours", parameters). Each isolates one suspected cause.
ABLATION = [
    ("before", "before", {}),
    ("before, depth from size (min side 16)", "before", {"max_levels": 30, "min_size": 16}),
    ("ours", "ours", {}),
    ("ours, old depth (5 levels, min side 8)", "ours", {"max_levels": 5, "min_size": 8}),
    ("ours, min side 8", "ours", {"min_size": 8}),
    ("ours, min side 32", "ours", {"min_size": 32}),
    ("ours, scale step 0.7", "ours", {"scale_step": 0.7}),
    ("ours, 10 warps", "ours", {"warps": 10}),
    ("ours, no early stop", "ours", {"epsilon": 0.0}),
    ("ours, no median filter", "ours", {"median_filter": 0}),
]
# Pairs whose per-level errors are shown: the three where the previous version lost to OpenCV, and
# the largest motion of the tuning set.
LEVEL_PAIRS = (("FlyingChairs", "0000000"), ("FlyingChairs", "0000002"), ("Sintel clean", "market_5"),
               ("dev (synthetic)", "1024x436-1"))


def ablation(pairs: list[FlowPair], before: ModuleType) -> pd.DataFrame:
    """Every ABLATION row (and OpenCV's DualTVL1) on `pairs`: EPE per pair, no timing."""
    from fusionseg.flow import tvl1

    modules = {"before": before, "ours": tvl1}
    methods = {label: solver_method(modules[version], **params) for label, version, params in ABLATION}
    methods[OPENCV_TVL1] = backend_method("tvl1-opencv", BACKENDS[1][2])
    return score_methods(pairs, methods)


def ablation_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Ablation rows x sets: mean EPE, and how many pairs of each set are worse than OpenCV's."""
    opencv = scores[scores.method == OPENCV_TVL1].set_index(["dataset", "pair"]).epe
    scores = scores.assign(worse=scores.epe.values > opencv.reindex(pd.MultiIndex.from_frame(scores[["dataset", "pair"]])).values)
    table = {}
    for dataset in pd.unique(scores.dataset):
        of_set = scores[scores.dataset == dataset].groupby("method", sort=False)
        table[f"EPE {dataset}"] = of_set.epe.mean()
        table[f"worse {dataset}"] = of_set.worse.sum().astype(int).astype(str) + "/" + of_set.size().astype(str)
    return pd.DataFrame(table).loc[pd.unique(scores.method)]


def level_table(pairs: list[FlowPair], before: ModuleType) -> pd.DataFrame:
    """Per-level EPE of the previous and the current version on LEVEL_PAIRS."""
    from fusionseg.flow import tvl1

    chosen = [p for p in pairs if (p.dataset, p.name) in LEVEL_PAIRS]
    frames = []
    for pair in chosen:
        old, new = (per_level_errors(module, pair).drop(columns="level") for module in (before, tvl1))
        merged = old.merge(new, on=["width", "size"], how="outer", suffixes=(" before", " ours"))
        frames.append(merged.sort_values("width").assign(dataset=pair.dataset, pair=pair.name))
    table = pd.concat(frames)
    return table[["dataset", "pair", "size", "epe before", "epe ours"]]


MAIN_PARTS = ("pair", "speed_427x240", "batch_independence", "memory_854x480", "gpu")
ABLATION_PARTS = ("ablation", "levels")
SEGFLOW_PARTS = ("segflow",)
ALL_PARTS = MAIN_PARTS + ABLATION_PARTS + SEGFLOW_PARTS


def previous_parts(kinds: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """The parts of the last flow.csv with the given kinds (each with its own columns only)."""
    path = RESULTS / "flow.csv"
    if not path.is_file():
        return {}
    table = pd.read_csv(path, dtype={"pair": str})
    return {kind: frame.drop(columns="kind").dropna(axis=1, how="all").reset_index(drop=True)
            for kind, frame in table.groupby("kind", sort=False) if kind in kinds}


def write_results(parts: dict[str, pd.DataFrame]) -> None:
    """flow.csv (every measurement; `kind` says which, `command` and `load` which run) and flow.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    frames = [frame.assign(kind=kind) for kind, frame in parts.items() if not frame.empty]
    pd.concat(frames).to_csv(RESULTS / "flow.csv", index=False)
    (RESULTS / "flow.md").write_text("\n".join(report_lines(parts)) + "\n")


def report_lines(parts: dict[str, pd.DataFrame]) -> list[str]:
    scores = parts["pair"]
    lines = [
        "# Optical flow benchmark",
        "",
        *_run_lines(parts, MAIN_PARTS),
        "",
        ("End-point error (EPE) is the mean over valid pixels (Sintel: outside its invalid mask; KITTI: its "
         "flow_occ pixels); `noc` columns count non-occluded pixels only (Sintel's occlusion mask; KITTI's "
         "flow_noc). Time is the best of the repeats per pair, averaged over the pairs; torch and OpenCV run "
         f"at the same thread count in one process. `{BEFORE}` is fusionseg/flow/tvl1.py as of commit "
         f"{BEFORE_COMMIT}, loaded from git and run in the same process."),
        "",
        "## Mean per data set",
        "",
        summarize(scores).to_markdown(floatfmt=".3f"),
        "",
        "## Every pair (EPE over valid pixels)",
        "",
        pair_table(scores).to_markdown(index=False, floatfmt=".3f"),
        "",
        "## Every pair with an occlusion mask (EPE over non-occluded pixels)",
        "",
        pair_table(scores.dropna(subset=["epe_noc"]), "epe_noc").to_markdown(index=False, floatfmt=".3f"),
        "",
        "## Bar: torch TV-L1 vs OpenCV DualTVL1 (scale step 0.5), per pair and per set",
        "",
        *bar_checks(scores),
        "",
        ("## Seconds per pair at 427x240 (DAVIS 240p, the CPU pipeline's size), before and after, alternating "
         "(best round; wall time, and CPU time of all threads)"),
        "",
        _plain(parts["speed_427x240"]).to_markdown(index=False, floatfmt=".3f"),
        "",
        "## Batch independence: each pair alone vs in one batch with the other two (largest flow difference)",
        "",
        _plain(parts["batch_independence"]).to_markdown(index=False, floatfmt=".2e"),
        "",
        "## One 854x480 pair per method in a fresh process (peak resident memory of the whole process, and how much the pair raised it above the peak after imports and set-up)",
        "",
        _plain(parts["memory_854x480"]).to_markdown(index=False, floatfmt=".2f"),
    ]
    if "gpu" in parts and not parts["gpu"].empty:
        lines += ["", "## GPU (batched)", "", _plain(parts["gpu"]).to_markdown(index=False, floatfmt=".1f")]
    if "ablation" in parts:
        lines += [
            "",
            "## Ablation: mean EPE per set, and pairs worse than OpenCV's DualTVL1",
            "",
            *_run_lines(parts, ABLATION_PARTS),
            "",
            ("`dev (synthetic)` is the tuning set (`dev_pairs()`: FlyingChairs-style pairs made from DAVIS frames, "
             "exact flow, motions up to 15% of the width); settings were chosen on it alone, the other sets were "
             "not used to choose anything."),
            "",
            ablation_table(parts["ablation"]).to_markdown(floatfmt=".3f"),
            "",
            "## Per-level EPE (flow after each level vs the ground truth averaged to that level, finest-level pixels)",
            "",
            _plain(parts["levels"]).to_markdown(index=False, floatfmt=".3f"),
        ]
    if "segflow" in parts:
        segflow = parts["segflow"]
        lines += [
            "",
            "## SegFlow's flow branch on the pairs it was not trained on",
            "",
            *_run_lines(parts, SEGFLOW_PARTS),
            "",
            (f"Model {segflow['model'].iloc[0]}, trained on the flow of: {segflow['trained_on'].iloc[0]} (and synthetic "
             "clips); EPE over valid pixels, TV-L1 and OpenCV from the main table above."),
            "",
            segflow_table(segflow, scores).to_markdown(index=False, floatfmt=".3f"),
        ]
    return lines


def _normalised(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def segflow_scores(pairs: list[FlowPair], model: Path) -> pd.DataFrame:
    """EPE of SegFlow's flow branch (the `segflow` flow method) on every pair whose set it did not
    train on: a set is left out when one of the model's `flow_pairs` folders is named like it."""
    import fusionseg.segflow  # noqa: F401  registers the flow method segflow
    from fusionseg.models.checkpoint import read_checkpoint

    trained = [_normalised(Path(folder).name) for folder in read_checkpoint(model)["config"].get("flow_pairs", [])]
    held_out = [p for p in pairs if not any(_normalised(p.dataset).startswith(name) for name in trained)]
    label = f"segflow ({model.name})"
    scores = score_methods(held_out, {label: backend_method("segflow", {"model": str(model)})})
    return scores.assign(model=str(model), trained_on=", ".join(trained) or "none")


def segflow_table(segflow: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Held-out pairs: SegFlow's EPE beside TV-L1's and OpenCV DualTVL1's on the same pairs, and means."""
    held = segflow[["dataset", "pair"]].drop_duplicates()
    columns = ["method", "dataset", "pair", "epe"]
    others = scores[scores["method"].isin([OURS, OPENCV_TVL1])].merge(held, on=["dataset", "pair"])[columns]
    table = pair_table(pd.concat([segflow[columns], others]))
    means = table.drop(columns="pair").groupby("dataset", sort=False).mean().reset_index().assign(pair="mean")
    return pd.concat([table, means], ignore_index=True)


def _run_lines(parts: dict[str, pd.DataFrame], kinds: tuple[str, ...]) -> list[str]:
    """Which command produced these parts, at which load."""
    runs = pd.concat([parts[kind][["command", "load"]] for kind in kinds if kind in parts]).drop_duplicates()
    return [f"`{run.command}` (load average before the run: {run.load}; a 2-core machine shared with other jobs)"
            for run in runs.itertuples()]


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["command", "load"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads (equal)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per pair (the best counts)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--gpu", action="store_true", help="also measure batched pairs/s on CUDA")
    parser.add_argument("--gpu-batch", type=int, default=8)
    parser.add_argument("--ablation", action="store_true",
                        help="instead: the ablation and per-level tables (the other tables are kept from flow.csv)")
    parser.add_argument("--segflow", type=Path, metavar="MODEL",
                        help="instead: SegFlow's flow branch (segflow.pt) on its held-out pairs (the other tables are kept)")
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
    run = {"command": " ".join(["python benchmarks/flow.py", *sys.argv[1:]]),
           "load": ", ".join(f"{x:.2f}" for x in os.getloadavg())}
    before = previous_tvl1()
    pairs = ground_truth_pairs(args.data)
    if args.segflow:
        if "pair" not in previous_parts(MAIN_PARTS):
            sys.exit(f"{RESULTS / 'flow.csv'}: no main results yet; run benchmarks/flow.py without --segflow first")
        new = {"segflow": segflow_scores(pairs, args.segflow)}
        parts = previous_parts(MAIN_PARTS + ABLATION_PARTS)
    elif args.ablation:
        if before is None:
            sys.exit("--ablation compares with the previous TV-L1, which needs the git history")
        if "pair" not in previous_parts(MAIN_PARTS):
            sys.exit(f"{RESULTS / 'flow.csv'}: no main results yet; run benchmarks/flow.py without --ablation first")
        tuning = dev_pairs(args.data)
        new = {"ablation": ablation(tuning + pairs, before), "levels": level_table(tuning + pairs, before)}
        parts = previous_parts(MAIN_PARTS + SEGFLOW_PARTS)
    else:
        new = {
            "pair": score_methods(pairs, all_methods(before), args.repeats),
            "speed_427x240": measure_davis_speed(args.data, before, rounds=5),
            "batch_independence": batch_independence([p for p in pairs if p.dataset == "FlyingChairs"][:3], before),
            "memory_854x480": measure_memory(args.data, args.threads),
            "gpu": measure_gpu(args.data, args.gpu_batch, rounds=5) if args.gpu else pd.DataFrame(),
        }
        parts = previous_parts(ABLATION_PARTS + SEGFLOW_PARTS)
    parts |= {kind: frame.assign(**run) for kind, frame in new.items() if not frame.empty}
    write_results({kind: parts[kind] for kind in ALL_PARTS if kind in parts})
    print("\n".join(bar_checks(parts["pair"])))


if __name__ == "__main__":
    main()
