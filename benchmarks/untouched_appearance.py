"""Ours-A with no fine-tuning at all, on a finished run's validation split: the appearance stream is the
DUTS U²-Netp as it is (`appearance.iterations: 0`), the fusion layer is refitted on it beside the
run's own motion stream, and both are scored against the run's fine-tuned Ours-A and Ours-Joint.

    python benchmarks/untouched_appearance.py [--run output/davis-cpu] [--threads 2]

A first-order check: the run's motion stream was trained on pseudo labels that its fine-tuned
appearance stream bootstrapped; adopting the untouched one would retrain that too. Writes
benchmarks/results/untouched_appearance.md and .csv (validation J and F, percent).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
import torch
import yaml

from fusionseg.config import section_params
from fusionseg.datasets.layout import RESOLUTION, Sequence
from fusionseg.infer.run import infer_joint, infer_stream
from fusionseg.train.streams import FusionData, train_fusion, train_stream
from thresholds import score_rule, validation_sequences, write_results

REPO = Path(__file__).resolve().parents[1]


def untouched_run(run: Path, config: dict, sequences: list[tuple[str, str]], work: Path) -> Path:
    """A run folder in `work` with the run's frames and motion probabilities and the untouched
    appearance stream's and its refitted fusion's probabilities, laid out as a run's."""
    work.mkdir(parents=True)
    (work / "frames").symlink_to(run.resolve() / "frames")
    appearance = section_params("appearance", {**config["appearance"], "iterations": 0})
    train_stream("appearance", [], appearance, work / "appearance.pt")  # no batches are drawn
    frames, app, mot = [], [], []
    for dataset, name in sequences:
        frames_dir = run / "frames" / dataset / "JPEGImages" / RESOLUTION / name
        images = Sequence.from_frames_dir(frames_dir).frame_paths()
        probs = work / "probs" / "appearance" / dataset / f"{name}.h5"
        probs.parent.mkdir(parents=True, exist_ok=True)
        infer_stream(work / "appearance.pt", "appearance", images, probs, 4, "cpu")
        frames.append(frames_dir)
        app.append(probs)
        mot.append(run / "probs" / "motion" / dataset / f"{name}.h5")
    train_fusion(FusionData(frames, app, mot), section_params("fusion", config["fusion"]), work / "fusion.pt")
    for (dataset, name), app_path, mot_path in zip(sequences, app, mot):
        joint = work / "probs" / "joint" / dataset / f"{name}.h5"
        joint.parent.mkdir(parents=True, exist_ok=True)
        infer_joint(work / "fusion.pt", app_path, mot_path, joint, 4, "cpu")
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=REPO / "output" / "davis-cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load((args.run / "config.effective.yaml").read_text())  # the config the run used
    sequences = validation_sequences(config)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fusionseg-untouched-") as work:
        untouched = untouched_run(args.run, config, sequences, Path(work) / "run")
        for key, label, run in (("tuned", "fine-tuned (the run's)", args.run), ("untouched", "untouched (iterations 0)", untouched)):
            for method in ("appearance", "joint"):
                j, f = score_rule(run, config, method, sequences, 0.5, False, Path(work) / "scores" / key)
                rows.append({"appearance stream": label, "method": method, "J": round(100 * j, 1), "F": round(100 * f, 1)})
                print(rows[-1], flush=True)
    write_results("untouched_appearance", "The appearance stream without fine-tuning", args.run, sequences, pd.DataFrame(rows),
                  "official scorer (percent). The untouched stream's fusion is refitted on the same sequences beside the "
                  "run's motion stream (which its fine-tuned appearance stream bootstrapped).")  # fmt: skip


if __name__ == "__main__":
    main()
