"""SegFlow benchmark: (a) the flow branch's end-point error beside TV-L1 and OpenCV on every ground-truth
pair it was not trained on; (b) the exchange ablation, each variant trained on the same data for the
same iterations: segmentation J with and without the flow branch's features, flow EPE with and without
the segmentation branch's features.

Data (all settings were chosen here, never on the DAVIS-2016 val sequences):
- segmentation: the DAVIS-2016 train sequences at 427x240 (../shared/data/davis2016, 240p) minus the
  validation split VALIDATION, on which J is reported (every frame, unsupervised: no mask given);
- flow: synthetic clips with exact flow (`fusionseg synth`, 16 clips x 10 frames at 427x240) and the
  real FlyingChairs pairs; EPE on 4 held-out synthetic clips and on the real pairs not trained on:
  Middlebury, KITTI-2015, Sintel clean and final (Sintel clean and final share their ground truth, so
  neither is trained on).

    python benchmarks/segflow.py [--threads 2] [--iterations N] [--variants both,none,seg_to_flow,flow_to_seg]
                                 [--online N] [--work DIR]

Trained models and inference results are kept in --work (default ../scratch/segflow-benchmark) and
reused when their parameters match. Writes benchmarks/results/segflow.md and segflow.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

# Idle OpenMP threads sleep instead of spinning (see benchmarks/flow.py): on a shared machine spinning
# threads slow a 2-thread run several-fold. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from fusionseg.flow.evaluate import pair_errors  # noqa: E402  (after OMP_WAIT_POLICY)
from fusionseg.flow.ground_truth import FlowPair, ground_truth_pairs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"  # as benchmarks/flow.py
RESULTS = REPO / "benchmarks" / "results"
DAVIS = DATA / "davis2016"
DAVIS_RESOLUTION = "240p"
VALIDATION = ("breakdance-flare", "elephant", "lucia", "rhino", "swing")  # every 6th train sequence, from the 4th
SYNTH_TRAIN = {"sequences": 16, "frames": 10, "height": 240, "width": 427, "seed": 11}
SYNTH_HELD_OUT = {"sequences": 4, "frames": 10, "height": 240, "width": 427, "seed": 12}
TRAIN_PAIR_SETS = ("FlyingChairs",)
VARIANTS = ("both", "none", "seg_to_flow", "flow_to_seg")
# The segflow section the pipeline ships (config defaults), so the benchmark measures what runs.
OVERRIDES = {"device": "cpu"}
CLASSICAL = [("TV-L1 (ours, torch)", "tvl1", {}), ("TV-L1 OpenCV (scale 0.5)", "tvl1-opencv", {"scale_step": 0.5})]


def render_synthetic(root: Path, spec: dict) -> list[Path]:
    """The clips' frame folders, rendered once (a clip depends only on its seed and name)."""
    from fusionseg.datasets.synthetic import SynthParams, write_clip

    params = SynthParams(frames=spec["frames"], height=spec["height"], width=spec["width"], seed=spec["seed"])
    folders = []
    for index in range(spec["sequences"]):
        name = f"clip{index:03d}"
        if not (root / "Flow" / name).is_dir():
            write_clip(root, name, params)
        folders.append(root / "JPEGImages" / "480p" / name)
    return folders


def davis_folders(names) -> list[Path]:
    return [DAVIS / "JPEGImages" / DAVIS_RESOLUTION / name for name in names]


def train_variant(exchange: str, iterations: int | None, work: Path, data: dict) -> tuple[Path, dict, float]:
    """The variant's checkpoint (trained unless one with the same parameters exists) and training seconds."""
    from fusionseg.config import section_params
    from fusionseg.models import read_checkpoint
    from fusionseg.segflow.data import AnnotatedPairs, FlowClips, FlowPairFolders
    from fusionseg.train.data import ConcatSources
    from fusionseg.segflow.train import train_segflow

    params = section_params("segflow", {**OVERRIDES, "exchange": exchange, **({"iterations": iterations} if iterations else {})})
    out = work / exchange / "segflow.pt"
    timing = out.with_name("train_seconds.json")
    if out.is_file() and read_checkpoint(out)["config"] == params and timing.is_file():
        return out, params, json.loads(timing.read_text())["seconds"]
    start = time.perf_counter()
    flow = ConcatSources([FlowClips(data["synth_train"]), FlowPairFolders([DATA / "flow_gt" / "flyingchairs"])])
    train_segflow(AnnotatedPairs(data["davis_train"]), flow, params, out)
    seconds = time.perf_counter() - start
    timing.write_text(json.dumps({"seconds": seconds, "load": os.getloadavg()}))
    return out, params, seconds


def segmentation_scores(model: Path, work: Path, online: int) -> tuple[pd.DataFrame, float]:
    """Per-sequence J on the validation split (masks = probability > 0.5) and inference s/frame."""
    from fusionseg.infer.probs import read_probs
    from fusionseg.io import write_mask
    from fusionseg.metrics.scoring import score_root
    from fusionseg.segflow.infer import infer_segflow

    tag = f"online{online}" if online else "offline"
    masks, seconds, frames = work / f"masks_{tag}", 0.0, 0
    for frames_dir in davis_folders(VALIDATION):
        probs_path = work / f"probs_{tag}" / f"{frames_dir.name}.h5"
        start = time.perf_counter()
        infer_segflow(model, frames_dir, probs_path, online_iterations=online, device="cpu")
        seconds += time.perf_counter() - start
        probs = read_probs(probs_path)
        frames += len(probs)
        for index, prob in enumerate(probs):
            write_mask(masks / frames_dir.name / f"{index:05d}.png", prob > 0.5)
    protocol = "semi-supervised" if online else "unsupervised"
    per_sequence, _ = score_root(masks, DAVIS, list(VALIDATION), "all", protocol=protocol, gt_resolution=DAVIS_RESOLUTION)
    return per_sequence[["sequence", "J_mean", "F_mean"]], seconds / frames


def synthetic_epe(model: Path, clips: list[Path]) -> pd.DataFrame:
    """EPE of the flow branch (colour frames, as infer-segflow runs it) on held-out synthetic pairs."""
    from fusionseg.datasets.layout import Sequence
    from fusionseg.segflow.data import FlowClips

    net, rows = _loaded(model), []
    for clip in clips:
        source = FlowClips([clip])
        samples = [source[i] for i in range(len(source))]
        errors = [_colour_flow_error(net, *sample) for sample in samples]
        motion = [np.linalg.norm(flow, axis=-1)[valid].mean() for _, _, flow, valid in samples]
        name = Sequence.from_frames_dir(clip).name
        rows.append({"dataset": "synthetic (held out)", "pair": name, "epe": float(np.mean(errors)), "zero_flow_epe": float(np.mean(motion))})
    return pd.DataFrame(rows)


def _loaded(model: Path):
    from fusionseg.segflow.model import load_segflow

    return load_segflow(model)


def _colour_flow_error(net, frame0: np.ndarray, frame1: np.ndarray, flow: np.ndarray, valid: np.ndarray) -> float:
    prediction = _colour_flow(net, frame0, frame1)
    return float(np.linalg.norm(prediction - flow, axis=-1)[valid].mean())


def _colour_flow(net, frame0: np.ndarray, frame1: np.ndarray) -> np.ndarray:
    import torch

    frames = [torch.from_numpy(f).permute(2, 0, 1)[None].float() for f in (frame0, frame1)]
    with torch.inference_mode():
        return net.flow(*frames)[0].permute(1, 2, 0).numpy()


def held_out_pairs() -> list[FlowPair]:
    return [pair for pair in ground_truth_pairs(DATA) if pair.dataset not in TRAIN_PAIR_SETS]


def real_pair_epe(label: str, flow_of, pairs: list[FlowPair]) -> pd.DataFrame:
    """EPE (valid pixels; non-occluded where the set says) and seconds per pair of one method."""
    rows = []
    for pair in pairs:
        start = time.perf_counter()
        flow = flow_of(pair)
        seconds = time.perf_counter() - start
        rows.append({"method": label, "dataset": pair.dataset, "pair": pair.name, **pair_errors(flow, pair), "seconds": seconds})
        print(f"{label:34s} {pair.dataset:13s} {pair.name:12s} EPE {rows[-1]['epe']:7.3f}  {seconds:6.2f} s", flush=True)
    return pd.DataFrame(rows)


def classical_epe(pairs: list[FlowPair]) -> pd.DataFrame:
    """TV-L1 (ours and OpenCV's) and, for scale, the error of predicting no motion at all."""
    from fusionseg.flow.methods import make_backend

    tables = [real_pair_epe("zero flow (reference)", lambda pair: np.zeros_like(pair.flow), pairs)]
    for label, method, params in CLASSICAL:
        backend = make_backend(method, params, "cpu")
        tables.append(real_pair_epe(label, lambda pair, backend=backend: backend([pair.grey[0]], [pair.grey[1]])[0], pairs))
    return pd.concat(tables, ignore_index=True)


def segflow_epe(exchange: str, model: Path, pairs: list[FlowPair]) -> pd.DataFrame:
    """Both ways the pipeline runs the flow branch: the flow method (grey frames, compute-flow) and
    infer-segflow --flow-out (colour frames: the segmentation features see colour)."""
    from fusionseg.flow.methods import make_backend

    backend = make_backend("segflow", {"model": str(model)}, "cpu")
    net = _loaded(model)
    grey = real_pair_epe(f"SegFlow {exchange} (flow method, grey)", lambda p: backend([p.grey[0]], [p.grey[1]])[0], pairs)
    colour = real_pair_epe(f"SegFlow {exchange} (infer-segflow, colour)", lambda p: _colour_flow(net, *p.rgb), pairs)
    return pd.concat([grey.assign(variant=exchange), colour.assign(variant=exchange)], ignore_index=True)


def ablation_table(segmentation: pd.DataFrame, synthetic: pd.DataFrame, real: pd.DataFrame) -> pd.DataFrame:
    """One row per exchange variant: J (validation), EPE on held-out synthetic and real pairs."""
    colour = real[real.method.str.contains("colour")]
    table = pd.DataFrame({
        "seg uses flow features": {v: v in ("both", "flow_to_seg") for v in VARIANTS},
        "flow uses seg features": {v: v in ("both", "seg_to_flow") for v in VARIANTS},
        "J (validation, offline)": segmentation[segmentation["mode"] == "offline"].groupby("variant").J_mean.mean(),
        "EPE synthetic held-out": synthetic.groupby("variant").epe.mean(),
        "EPE real held-out (mean of sets)": colour.groupby(["variant", "dataset"]).epe.mean().groupby("variant").mean(),
    })
    return table.loc[[v for v in VARIANTS if v in table.index]]


def epe_table(real: pd.DataFrame) -> pd.DataFrame:
    """Methods x held-out sets: mean EPE per set, and seconds per pair."""
    table = real.groupby(["method", "dataset"]).epe.mean().unstack()
    table["seconds per pair"] = real.groupby("method").seconds.mean()
    return table


def write_results(parts: dict[str, pd.DataFrame], command: str, notes: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    long = pd.concat([frame.assign(table=name) for name, frame in parts.items()], ignore_index=True)
    long.to_csv(RESULTS / "segflow.csv", index=False)
    lines = ["# SegFlow benchmark", "", f"`{command}`", "", *notes, ""]
    lines += ["## Ablation: exchange directions (same data, same iterations)", "", parts["ablation"].to_markdown(floatfmt=".3f"), ""]
    lines += ["## Segmentation J per validation sequence (masks at 427x240, every frame)", ""]
    per_sequence = parts["segmentation"].pivot_table(index="sequence", columns=["variant", "mode"], values="J_mean")
    lines += [per_sequence.to_markdown(floatfmt=".3f"), ""]
    zero = parts["synthetic_epe"].groupby("pair").zero_flow_epe.first().mean()
    lines += [f"Held-out synthetic clips: predicting no motion gives EPE {zero:.3f}.", ""]
    lines += ["## Flow EPE on held-out real pairs (mean per set; pixels, valid pixels)", "", parts["epe"].to_markdown(floatfmt=".3f"), ""]
    lines += ["## Timing", "", parts["timing"].to_markdown(index=False, floatfmt=".2f"), ""]
    (RESULTS / "segflow.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, help="training iterations (default: the config default)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--online", type=int, default=0, help="also score the semi-supervised mode of 'both' with N online iterations")
    parser.add_argument("--work", type=Path, default=REPO.parent / "scratch" / "segflow-benchmark")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    variants = [v for v in args.variants.split(",") if v]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    data = {
        "davis_train": davis_folders(s for s in (DAVIS / "ImageSets" / DAVIS_RESOLUTION / "train.txt").read_text().split() if s not in VALIDATION),
        "synth_train": render_synthetic(args.work / "synth_train", SYNTH_TRAIN),
        "synth_held_out": render_synthetic(args.work / "synth_held_out", SYNTH_HELD_OUT),
    }
    pairs = held_out_pairs()
    segmentation, synthetic, real, timing = [], [], [classical_epe(pairs)], []
    for exchange in variants:
        model, params, train_seconds = train_variant(exchange, args.iterations, args.work, data)
        scores, per_frame = segmentation_scores(model, model.parent, 0)
        segmentation.append(scores.assign(variant=exchange, mode="offline"))
        timing.append({"variant": exchange, "mode": "offline", "iterations": params["iterations"], "train_s": train_seconds, "infer_s_per_frame": per_frame})
        if args.online and exchange == "both":
            scores, per_frame = segmentation_scores(model, model.parent, args.online)
            segmentation.append(scores.assign(variant=exchange, mode=f"online {args.online}"))
            timing.append({"variant": exchange, "mode": f"online {args.online}", "iterations": params["iterations"], "train_s": train_seconds, "infer_s_per_frame": per_frame})
        synthetic.append(synthetic_epe(model, data["synth_held_out"]).assign(variant=exchange))
        real.append(segflow_epe(exchange, model, pairs))
    segmentation, synthetic, real = (pd.concat(t, ignore_index=True) for t in (segmentation, synthetic, real))
    parts = {
        "ablation": ablation_table(segmentation, synthetic, real),
        "segmentation": segmentation,
        "synthetic_epe": synthetic,
        "epe": epe_table(real),
        "real_pairs": real,
        "timing": pd.DataFrame(timing),
    }
    command = "python benchmarks/segflow.py " + " ".join(sys.argv[1:])
    notes = [
        f"CPU, {args.threads} torch threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; load average at the start: {load} "
        "(a machine shared with other jobs: times are upper bounds).",
        f"Segmentation: trained on the DAVIS-2016 train sequences at 427x240 minus the validation split "
        f"({', '.join(VALIDATION)}), on which J is scored on every frame. Flow: trained on {SYNTH_TRAIN['sequences']} "
        f"synthetic clips and FlyingChairs; EPE on {SYNTH_HELD_OUT['sequences']} held-out synthetic clips and on "
        "Middlebury, KITTI-2015, Sintel clean and final (never trained on).",
    ]
    write_results(parts, command, notes)
    print(parts["ablation"].to_string(float_format=lambda x: f"{x:.3f}"))
    print(parts["epe"].to_string(float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
