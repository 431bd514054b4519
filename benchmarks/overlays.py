"""One picture of a finished run for the README: per benchmark sequence, its middle scored frame with
every method's mask tinted over it, and the ground truth.

    python benchmarks/overlays.py --run output/davis-cpu --out docs/davis-cpu-overlays.jpg

Masks are read from results/masks (native size); frames from the run's frame folders (the size the
networks saw), upsampled to the masks' size for the picture.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from fusionseg.datasets.layout import RESOLUTION
from fusionseg.io import read_image, read_mask, write_image
from fusionseg.metrics.summary import METHOD_LABELS, read_scores
from fusionseg.report.figures import overlay

COLUMNS = ["saliency", "appearance", "motion", "joint", "joint-tsn", "tsn", "segflow"]
TILE_WIDTH = 320


def tile(rgb: np.ndarray, caption: str) -> np.ndarray:
    height = round(rgb.shape[0] * TILE_WIDTH / rgb.shape[1])
    scaled = cv2.resize(rgb, (TILE_WIDTH, height), interpolation=cv2.INTER_AREA)
    cv2.putText(scaled, caption, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(scaled, caption, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return scaled


def sequence_row(run: Path, dataset: str, sequence: str, methods: list[str], j: dict) -> np.ndarray:
    gt_dir = run / "frames" / dataset / "Annotations" / "source" / sequence
    annotated = sorted(gt_dir.glob("*.png"))
    middle = annotated[len(annotated) // 2]
    frame = read_image(run / "frames" / dataset / "JPEGImages" / RESOLUTION / sequence / f"{middle.stem}.jpg")
    gt = read_mask(middle)
    frame = cv2.resize(frame, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
    tiles = [tile(frame, f"{sequence} {middle.stem}")]
    for method in methods:
        mask = read_mask(run / "results" / "masks" / method / dataset / sequence / middle.name)
        score = j.get((method, dataset, sequence))
        tiles.append(tile(overlay(frame, mask), f"{METHOD_LABELS[method]} J {score:.2f}" if score is not None else METHOD_LABELS[method]))
    tiles.append(tile(overlay(frame, gt), "ground truth"))
    height = max(t.shape[0] for t in tiles)
    return np.hstack([np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0))) for t in tiles])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="the config's out_dir")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    scores = read_scores(sorted(p for p in (args.run / "results" / "scores").glob("*/*.csv") if not p.name.endswith(".frames.csv")))
    j = scores.groupby(["method", "dataset", "sequence"])["J_mean"].mean().to_dict()
    methods = [m for m in COLUMNS if (args.run / "results" / "masks" / m).is_dir()]
    pairs = list(dict.fromkeys(zip(scores["dataset"], scores["sequence"])))
    rows = [sequence_row(args.run, dataset, sequence, methods, j) for dataset, sequence in pairs]
    width = max(r.shape[1] for r in rows)
    write_image(args.out, np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]), jpeg_quality=80)
    print(f"{args.out}: {len(rows)} sequences x {len(methods) + 2} columns")


if __name__ == "__main__":
    main()
