"""How a finished run's masks would score on its validation split with another threshold, or with the
Saliency row's per-frame min-max stretch before the 0.5 threshold: the stored probabilities are
thresholded again and scored by the official scorer (no training, no benchmark sequence).

    python benchmarks/thresholds.py [--run output/davis-cpu] [--methods appearance motion joint]
                                    [--thresholds 0.3 0.4 0.5 0.6]

Writes benchmarks/results/thresholds.md and thresholds.csv (J and F per method and rule, percent).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from fusionseg.datasets.layout import RESOLUTION, SOURCE_RESOLUTION
from fusionseg.infer.masks import fitted_size, write_masks
from fusionseg.infer.probs import probs_shape, read_probs, read_probs_attrs, write_probs
from fusionseg.metrics.scoring import score_root

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def min_max(probs: np.ndarray) -> np.ndarray:
    """Each frame stretched to 0..1 by its own minimum and maximum (the background remover's output)."""
    low = probs.min(axis=(1, 2), keepdims=True)
    span = probs.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (probs - low) / np.maximum(span, 1e-6), 0.0)


def shown(path: Path) -> Path:
    """`path` relative to the repository where it lies inside it (results name no machine's folders)."""
    return path.resolve().relative_to(REPO) if path.resolve().is_relative_to(REPO) else path


def validation_sequences(config: dict) -> list[tuple[str, str]]:
    """(dataset, sequence) of the run's validation role."""
    return [(entry["dataset"], seq) for entry in config["roles"]["validation"] for seq in entry["sequences"]]


def score_rule(run: Path, config: dict, method: str, sequences: list[tuple[str, str]], threshold: float,
               stretch: bool, work: Path) -> tuple[float, float]:  # fmt: skip
    """Mean J and F over the validation sequences of `method`'s probabilities under one rule."""
    scores = []
    for dataset in sorted({d for d, _ in sequences}):
        names = [s for d, s in sequences if d == dataset]
        frames_root = run / "frames" / dataset
        pred_root = work / f"{method}-{threshold}-{stretch}" / dataset
        for name in names:
            source = probs_path = run / "probs" / method / dataset / f"{name}.h5"
            if stretch:
                stretched = min_max(read_probs(source))
                probs_path = work / f"{method}-{dataset}-{name}.stretched.h5"
                model = read_probs_attrs(source)["model_sha256"]
                write_probs(probs_path, [stretched], len(stretched), stretched.shape[1:], method, model)
            frames_dir = frames_root / "JPEGImages" / RESOLUTION / name
            write_masks(probs_path, pred_root / name, threshold, fitted_size(frames_dir, probs_shape(probs_path), probs_path))
        per_sequence, _ = score_root(pred_root, frames_root, names, config["datasets"][dataset]["score_frames"],
                                     gt_resolution=SOURCE_RESOLUTION)  # fmt: skip
        scores.append(per_sequence[["J_mean", "F_mean"]])
    table = pd.concat(scores)
    return float(table["J_mean"].mean()), float(table["F_mean"].mean())


def write_results(name: str, title: str, run: Path, sequences: list[tuple[str, str]], table: pd.DataFrame, how: str) -> None:
    """benchmarks/results/<name>.csv and .md: the table under a title naming the script, run and sequences."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / f"{name}.csv", index=False)
    names = ", ".join(f"{d}/{s}" for d, s in sequences)
    (RESULTS / f"{name}.md").write_text(
        f"# {title} (`python benchmarks/{name}.py`)\n\n"
        f"Run `{shown(run)}`, validation sequences {names}; {how}\n\n" + table.to_markdown(index=False) + "\n"
    )
    print(RESULTS / f"{name}.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=REPO / "output" / "davis-cpu")
    parser.add_argument("--methods", nargs="+", default=["appearance", "motion", "joint"])
    parser.add_argument("--thresholds", nargs="+", type=float, default=[0.3, 0.4, 0.5, 0.6])
    args = parser.parse_args()
    config = yaml.safe_load((args.run / "config.effective.yaml").read_text())  # the config the run used
    sequences = validation_sequences(config)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fusionseg-thresholds-") as work:
        rules = [(t, False) for t in args.thresholds] + [(0.5, True)]
        for method in args.methods:
            for threshold, stretch in rules:
                j, f = score_rule(args.run, config, method, sequences, threshold, stretch, Path(work))
                rule = f"min-max, > {threshold}" if stretch else f"> {threshold}"
                rows.append({"method": method, "rule": rule, "J": round(100 * j, 1), "F": round(100 * f, 1)})
                print(rows[-1], flush=True)
    write_results("thresholds", "Thresholds on the validation split", args.run, sequences, pd.DataFrame(rows),
                  "the stored probabilities thresholded again and scored by the official scorer (percent).")  # fmt: skip


if __name__ == "__main__":
    main()
