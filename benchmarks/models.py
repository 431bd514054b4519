"""Appearance-stream training and inference speed on this CPU, before and after (issue 11), side by side.

Training: seconds per iteration of the real loop (`train_stream`: DAVIS 240p frames from memory,
augmentation, forward, backward, SGD step), EfficientNet-Lite0 with its ImageNet weights, crop 256,
batch 4 and 8. Variants, each in its own subprocess, interleaved round by round:

    baseline          the package as of commit --baseline (extracted with `git archive`, run from a
                      temporary folder): the code path as it was
    current           this checkout with its defaults (one loader worker)
    loader_workers=0  this checkout, batches made in the training process
    freeze_stages=N   this checkout with the first N backbone stages frozen (changes what is learned)
    OMP_WAIT_POLICY unset, 1 thread     thread settings (the others run with OMP_WAIT_POLICY=PASSIVE)

Per iteration: wall time from one step's end to the next, and the training process's CPU time
(the loader worker's is not in it). Warm-up iterations are dropped; a row is the median of the rest.
Inference: seconds per frame of `infer_stream` (JPEG decoding, forward, HDF5 writing) on 427x240
frames, batch 4, baseline vs current, after a warm-up call.

Profile (--profile): where an iteration's time goes, baseline and current, for crop 256 (batch 4
and 8) and whole 427x240 frames (batch 4): forward and backward of each backbone stage, the head
and the classifiers timed in isolation (CPU time, fastest of 3), batch preparation and the SGD step.

    python benchmarks/models.py [--rounds 2 --steps 3 --threads 2] [--profile]

Writes benchmarks/results/models.md/.csv (timing; --rounds 0 skips it) and models.profile.md/.csv
(--profile), each with the command and the machine's load average (the CPU is shared: compare
ratios within one run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "davis2016"
# The last commit before the issue-11 speed work on the stream model and the training loop.
BASELINE_COMMIT = "7fa0eb3"
SEQUENCES = ("bear", "boat", "dog-agility", "hike")
INFER_SEQUENCE = "bear"
INFER_FRAMES = 24
WARMUP = 2
BOTH_BATCHES = ((256, 4), (256, 8))
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}
UNSET = {}  # the environment the benchmark runs in (run it without OMP_WAIT_POLICY)
# name -> code (baseline or current), extra training parameters, (crop, batch) cases, threads
# (None: --threads), environment. OMP_WAIT_POLICY must be set before the OpenMP runtime starts, hence
# in the environment of the run. PASSIVE (waiting threads sleep) for the code comparisons: by default
# waiting threads spin first, and when other jobs hold the cores two threads then run up to 3x slower
# than one (measured here), which would swamp the differences between code paths.
TRAIN_VARIANTS = {
    "baseline": ("baseline", {}, BOTH_BATCHES, None, PASSIVE),
    "current": ("current", {}, BOTH_BATCHES, None, PASSIVE),
    "current + loader_workers=0": ("current", {"loader_workers": 0}, ((256, 4),), None, PASSIVE),
    "current + freeze_stages=4": ("current", {"freeze_stages": 4}, ((256, 4),), None, PASSIVE),
    "current + freeze_stages=7": ("current", {"freeze_stages": 7}, ((256, 4),), None, PASSIVE),
    "baseline + OMP_WAIT_POLICY unset": ("baseline", {}, ((256, 4),), None, UNSET),
    "current + OMP_WAIT_POLICY unset": ("current", {}, ((256, 4),), None, UNSET),
    "current + 1 thread": ("current", {}, ((256, 4),), 1, PASSIVE),
}
PROFILE_SHAPES = (("crop 256", 4, 256, 256), ("crop 256", 8, 256, 256), ("whole frame", 4, 240, 427))


# ---------------------------------------------------------------- cases, run in a subprocess each


def train_case(crop: int, batch: int, extra: dict, steps: int, threads: int, frames_root: str) -> dict:
    """Seconds per training iteration (wall and this process's CPU), medians after the warm-up."""
    import torch

    from fusionseg.train import loop
    from fusionseg.train.data import AnnotatedFrames
    from fusionseg.train.streams import train_stream

    torch.set_num_threads(threads)
    source = AnnotatedFrames([Path(frames_root) / name for name in SEQUENCES])
    params = _appearance_params({"iterations": WARMUP + steps, "batch_size": batch, "crop_size": crop,
                                 "checkpoint_every": 10_000, "device": "cpu", **extra})
    marks = _record_step_ends(loop)
    with tempfile.TemporaryDirectory() as tmp:
        train_stream("appearance", source, params, Path(tmp) / "appearance.pt")
    walls = [b[0] - a[0] for a, b in zip(marks, marks[1:])][WARMUP - 1 :]
    cpus = [b[1] - a[1] for a, b in zip(marks, marks[1:])][WARMUP - 1 :]
    return {"s_per_iteration": statistics.median(walls), "cpu_s_per_iteration": statistics.median(cpus)}


def _appearance_params(given: dict) -> dict:
    """The appearance section with defaults filled, through whichever parser the package has."""
    try:
        from fusionseg.config import section_params
    except ImportError:  # the baseline's parser
        from fusionseg.train.params import training_params

        return training_params(json.dumps(given), "appearance")
    return section_params("appearance", given)


def _record_step_ends(loop) -> list[tuple[float, float]]:
    """Wrap Trainer._step (in both the baseline and the current package) to note when each step ends."""
    marks: list[tuple[float, float]] = []
    original = loop.Trainer._step

    def step(self, *args, **kwargs):
        row = original(self, *args, **kwargs)
        marks.append((time.perf_counter(), time.process_time()))
        return row

    loop.Trainer._step = step
    return marks


def infer_case(model_path: str, threads: int, frames_root: str) -> dict:
    """Seconds per frame of infer_stream over INFER_FRAMES frames, after a warm-up call."""
    import torch

    from fusionseg.datasets.layout import Sequence
    from fusionseg.infer.run import infer_stream

    torch.set_num_threads(threads)
    frames = Sequence.from_frames_dir(Path(frames_root) / INFER_SEQUENCE).frame_paths()[:INFER_FRAMES]
    with tempfile.TemporaryDirectory() as tmp:
        infer_stream(model_path, "appearance", frames[:4], Path(tmp) / "warm.h5", 4, "cpu")
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        infer_stream(model_path, "appearance", frames, Path(tmp) / "probs.h5", 4, "cpu")
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    return {"s_per_frame": wall / len(frames), "cpu_s_per_frame": cpu / len(frames)}


def profile_case(threads: int, frames_root: str) -> list[dict]:
    """Per-stage forward/backward CPU seconds, batch preparation and SGD step, for PROFILE_SHAPES."""
    import torch

    from fusionseg.models.stream import StreamModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = StreamModel("efficientnet_lite0", "imagenet").train()
    rows = []
    for label, batch, height, width in PROFILE_SHAPES:
        shape = f"{label} {width}x{height}, batch {batch}"
        rows += [{"shape": shape, **row} for row in _stage_times(model, batch, height, width)]
        crop = max(height, width)  # a whole frame reaches the loop as a square crop padded with ignored pixels
        rows.append({"shape": shape, "part": f"batch preparation (sample_batch, crop {crop})", "forward_s": _batch_time(frames_root, batch, crop), "backward_s": 0.0})
        rows.append({"shape": shape, "part": "SGD step", "forward_s": _sgd_time(model), "backward_s": 0.0})
    return rows


def _stage_times(model, batch: int, height: int, width: int) -> list[dict]:
    import torch
    import torch.nn.functional as F

    backbone = model.backbone
    # What the loop feeds: HWC images permuted to NCHW, i.e. channels-last memory (in the baseline too).
    images = (torch.rand(batch, height, width, 3) * 255).permute(0, 3, 1, 2)
    x = (images - model.mean) / model.std
    parts = [("stem", lambda z: backbone.act(_conv_bn(backbone._conv_stem, backbone._bn0, z)), False)]
    parts += [(name, run, True) for name, run in _block_groups(backbone)]
    parts.append(("head (1x1 to 1280 ch)", lambda z: backbone.act(_conv_bn(backbone._conv_head, backbone._bn1, z)), True))
    classify = getattr(model, "classify", None) or (lambda f: sum(conv(f) for conv in model.classifiers))
    parts.append(("4 dilated classifiers", classify, True))
    target = torch.randint(0, 2, (batch, height, width))

    def loss(z):
        return F.cross_entropy(F.interpolate(z, size=(height, width), mode="bilinear", align_corners=False), target)

    parts.append(("upsample + loss", loss, True))
    rows = []
    for name, fn, needs_input_grad in parts:
        (forward, backward), x = _fwd_bwd(fn, x, needs_input_grad)
        rows.append({"part": f"{name} -> {tuple(x.shape[-2:]) if x.dim() == 4 else 'loss'}", "forward_s": forward, "backward_s": backward})
    return rows


def _conv_bn(conv, bn, x):
    """Convolution + BatchNorm the way the package being profiled computes them."""
    from fusionseg.models import efficientnet

    fold = getattr(efficientnet, "conv_bn", None)
    return fold(conv, bn, x) if fold else bn(conv(x))


def _block_groups(backbone) -> list[tuple[str, object]]:
    """Stages 1-3 one by one, then the dilated stages by dilation (4-5: 2, 6-7: 4), each run the way
    the package's `features` runs it (the current one on the map's phases)."""
    from fusionseg.models import efficientnet

    run_blocks = getattr(efficientnet, "_run_blocks", None)
    groups: list[list] = []  # [label, blocks, dilation]
    first = 0
    for index, (*_, repeats) in enumerate(efficientnet.STAGES):
        blocks = list(backbone._blocks[first : first + repeats])
        first += repeats
        dilation = blocks[0]._depthwise_conv.dilation[0]
        if dilation > 1 and groups and groups[-1][2] == dilation:
            groups[-1][0] += f"-{index + 1}"
            groups[-1][1] += blocks
        else:
            groups.append([f"stage {index + 1}", blocks, dilation])
    return [(f"{label} (dilation {dilation})", _chain(blocks, dilation, run_blocks)) for label, blocks, dilation in groups]


def _chain(blocks, dilation, run_blocks):
    def run(x):
        if run_blocks is not None:
            return run_blocks(blocks, x, dilation)
        for block in blocks:
            x = block(x)
        return x

    return run


def _fwd_bwd(fn, x, needs_input_grad: bool, repeats: int = 3):
    """Fastest forward and backward CPU seconds of fn(x), and its output (the next part's input)."""
    import torch

    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        inp = x.detach().requires_grad_(needs_input_grad)
        start = time.process_time()
        out = fn(inp)
        middle = time.process_time()
        out.backward(torch.ones_like(out))
        best = [min(best[0], middle - start), min(best[1], time.process_time() - middle)]
    return best, out.detach()


def _batch_time(frames_root: str, batch: int, crop: int) -> float:
    from fusionseg.train.data import AnnotatedFrames, sample_batch

    source = AnnotatedFrames([Path(frames_root) / SEQUENCES[0]])
    params = _appearance_params({"batch_size": batch, "crop_size": crop})
    start = time.process_time()
    for iteration in range(10):
        sample_batch(source, params, iteration)
    return (time.process_time() - start) / 10


def _sgd_time(model) -> float:
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.grad = torch.zeros_like(p)
    optimizer = torch.optim.SGD(trainable, lr=1e-9, momentum=0.9, weight_decay=5e-4)
    optimizer.step()
    start = time.process_time()
    for _ in range(5):
        optimizer.step()
    return (time.process_time() - start) / 5


# ---------------------------------------------------------------- orchestration


def run_case(package_dir: Path | None, case: dict, args: argparse.Namespace, threads: int | None = None, env: dict | None = None) -> dict | list:
    """Run one case in a fresh interpreter importing fusionseg from `package_dir` (None: this checkout)."""
    env = {**os.environ, **(env or {})}
    if package_dir is not None:
        env["PYTHONPATH"] = str(package_dir)
    threads = threads or args.threads
    command = [sys.executable, __file__, "--case", json.dumps(case), "--threads", str(threads), "--steps", str(args.steps)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_one_case(case: dict, args: argparse.Namespace) -> None:
    kind = case.pop("kind")
    if kind == "train":
        result = train_case(case["crop"], case["batch"], case["extra"], args.steps, args.threads, str(_frames_root()))
    elif kind == "infer":
        result = infer_case(case["model"], args.threads, str(_frames_root()))
    else:
        result = profile_case(args.threads, str(_frames_root()))
    print(json.dumps(result))


def _frames_root() -> Path:
    return DATA / "JPEGImages" / "240p"


def extract_baseline(commit: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "fusionseg"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def make_model(path: Path) -> None:
    """An appearance checkpoint with the ImageNet backbone (inference speed does not depend on training)."""
    from fusionseg.models import StreamModel, save_checkpoint

    save_checkpoint(path, StreamModel("efficientnet_lite0", "imagenet"), {}, 0)


def measure(args: argparse.Namespace, baseline_dir: Path, model_path: Path) -> pd.DataFrame:
    """Every variant's seconds per training iteration (and per inference frame), round after round."""
    rows = []
    variants = {name: TRAIN_VARIANTS[name] for name in args.variants.split(",")}
    for round_index in range(args.rounds):
        for variant, (code, extra, shapes, threads, env) in variants.items():
            for crop, batch in shapes:
                package = baseline_dir if code == "baseline" else None
                load = os.getloadavg()[0]
                result = run_case(package, {"kind": "train", "crop": crop, "batch": batch, "extra": extra}, args, threads, env)
                rows.append({"task": "train", "variant": variant, "crop": crop, "batch": batch, "threads": threads or args.threads,
                             "round": round_index, "load_1min": load, **result})
                print(rows[-1], flush=True)
        for variant, package in (("baseline", baseline_dir), ("current", None)):
            load = os.getloadavg()[0]
            result = run_case(package, {"kind": "infer", "model": str(model_path)}, args, env=PASSIVE)
            rows.append({"task": "infer 427x240", "variant": variant, "batch": 4, "threads": args.threads, "round": round_index,
                         "load_1min": load, **result})
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def profile(args: argparse.Namespace, baseline_dir: Path) -> pd.DataFrame:
    tables = []
    for variant, package in (("baseline", baseline_dir), ("current", None)):
        # Sleeping OpenMP waits keep CPU time close to the work done while other jobs hold the cores.
        table = pd.DataFrame(run_case(package, {"kind": "profile"}, args, env=PASSIVE))
        tables.append(table.assign(variant=variant))
    return pd.concat(tables, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of every variant (0: no timing)")
    parser.add_argument("--steps", type=int, default=3, help=f"timed training iterations per run (after {WARMUP} warm-up)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--baseline", default=BASELINE_COMMIT, help="git commit whose package is the baseline")
    parser.add_argument("--variants", default=",".join(TRAIN_VARIANTS), help="training variants to time (comma-separated names)")
    parser.add_argument("--profile", action="store_true", help="profile where an iteration's time goes (models.profile.md)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        run_one_case(json.loads(args.case), args)
        return
    unknown = set(args.variants.split(",")) - set(TRAIN_VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(sorted(unknown))}; known: {', '.join(TRAIN_VARIANTS)}")
    if not _frames_root().is_dir():
        raise SystemExit(f"{_frames_root()}: DAVIS 240p frames not found (the benchmark needs ../shared/data)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        baseline_dir = extract_baseline(args.baseline, Path(tmp))
        if args.profile:
            _write_report("models.profile", profile, args, baseline_dir)
        if args.rounds:
            make_model(Path(tmp) / "appearance.pt")
            _write_report("models", measure, args, baseline_dir, Path(tmp) / "appearance.pt")


def _write_report(name: str, produce, args: argparse.Namespace, *inputs) -> None:
    """Run `produce`, write its table to <name>.csv and the page to <name>.md, with command and load."""
    load_before = os.getloadavg()
    table = produce(args, *inputs)
    load_after = os.getloadavg()
    table.to_csv(RESULTS / f"{name}.csv", index=False)
    command = " ".join(["python", "benchmarks/models.py", *sys.argv[1:]])
    header = [
        f"Command: `{command}`; {args.threads} torch thread(s); {platform.machine()}, {os.cpu_count()} cores, "
        f"shared with other jobs: load average (1, 5, 15 min) {_load(load_before)} before, {_load(load_after)} after. "
        f"Baseline: the package at commit {args.baseline}.",
        "",
    ]
    page = {"models": _timing_page, "models.profile": _profile_page}[name](table, args)
    (RESULTS / f"{name}.md").write_text("\n".join([page[0], "", *header, *page[1:]]) + "\n")
    print((RESULTS / f"{name}.md").read_text())


# ---------------------------------------------------------------- report


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    keys = ["task", "variant", "crop", "batch", "threads"]
    value = table["s_per_iteration"].fillna(table["s_per_frame"])
    cpu = table["cpu_s_per_iteration"].fillna(table["cpu_s_per_frame"])
    data = table.assign(seconds=value, cpu_seconds=cpu, crop=table["crop"].fillna(0).astype(int))
    summary = data.groupby(keys, sort=False).agg(
        seconds=("seconds", "median"), cpu_seconds=("cpu_seconds", "median"), runs=("round", "count"), load=("load_1min", "median")
    ).reset_index()
    baseline = summary[summary["variant"] == "baseline"].set_index(["task", "crop", "batch"])
    for column in ("seconds", "cpu_seconds"):
        reference = summary.set_index(["task", "crop", "batch"]).index.map(baseline[column])
        summary[f"speedup_{column}"] = reference / summary[column]
    return summary


def _timing_page(table: pd.DataFrame, args) -> list[str]:
    summary = summarize(table)
    return [
        "# Appearance stream: training and inference speed on the CPU, before and after",
        f"{args.rounds} interleaved round(s); a training value is the median over rounds of the median over "
        f"{args.steps} timed iterations (after {WARMUP} warm-up); load: the median 1-minute load average at the "
        "runs' start (every run in models.csv). Variants run with OMP_WAIT_POLICY=PASSIVE unless named otherwise: "
        "the `fusionseg train-*` commands now set it when the environment does not; the 'unset' rows show what "
        "training paid before on this shared machine, where spinning OpenMP threads compete with other jobs.",
        "",
        "Training: DAVIS-2016 240p frames of " + ", ".join(SEQUENCES) + ", EfficientNet-Lite0 ImageNet weights, "
        "`train_stream` as the pipeline runs it. seconds: wall per iteration; cpu_seconds: CPU of the training "
        "process (its loader worker not included); speedups against the baseline at the same crop and batch. "
        f"Inference: `infer_stream`, 427x240 frames of {INFER_SEQUENCE}, s per frame including decoding and writing.",
        "",
        _markdown(summary, {"seconds": 3, "cpu_seconds": 3, "load": 1, "speedup_seconds": 2, "speedup_cpu_seconds": 2}),
    ]


def _profile_page(profile_table: pd.DataFrame, args) -> list[str]:
    lines = ["# Appearance stream: where a training iteration's time goes, before and after",
             "CPU seconds (OMP_WAIT_POLICY=PASSIVE), each part timed alone (fastest of 3) on random input of the shape it sees in training; "
             "backward includes the gradient to its input (not needed by the stem). Batch preparation: "
             "`sample_batch` on frames in memory; SGD step: over the trainable parameters.", ""]
    wide = profile_table.pivot_table(index=["shape", "part"], columns="variant", values=["forward_s", "backward_s"], sort=False)
    wide.columns = [f"{variant} {what.replace('_s', '')}" for what, variant in wide.columns]
    order = pd.MultiIndex.from_frame(profile_table[["shape", "part"]].drop_duplicates())
    wide = wide.reindex(order).reset_index()[["shape", "part", "baseline forward", "baseline backward", "current forward", "current backward"]]
    for shape, part in wide.groupby("shape", sort=False):
        totals = part.drop(columns=["shape", "part"]).sum()
        lines += [f"### {shape}", "", _markdown(part.drop(columns="shape"), {c: 3 for c in totals.index}),
                  "", "total: " + ", ".join(f"{k} {v:.3f} s" for k, v in totals.items())
                  + f"; forward + backward, baseline / current: {_ratio(totals):.2f}", ""]
    return lines


def _ratio(totals: pd.Series) -> float:
    return (totals["baseline forward"] + totals["baseline backward"]) / (totals["current forward"] + totals["current backward"])


def _load(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _markdown(table: pd.DataFrame, digits: dict[str, int]) -> str:
    shown = table.copy()
    for column, places in digits.items():
        shown[column] = shown[column].map(lambda v, p=places: f"{v:.{p}f}")
    lines = ["| " + " | ".join(map(str, shown.columns)) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
