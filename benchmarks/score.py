"""Scoring speed and exactness: fusionseg's scorer vs a frame-by-frame NumPy + OpenCV reference.

Builds 20 DAVIS sequences (854x480, ~960 frames) from the 6 real DAVIS-2016 sequences in
../shared/data/davis2016, with the official example predictions (osvos, rvos) shifted by a few pixels
so that every copy scores differently; then scores them
- end to end (reading the PNGs and scoring): `fusionseg.metrics.scoring.score_root` with 1 and 2
  threads, and the reference reading and scoring frame by frame;
- compute only (masks already in memory): `frame_scores` vs the reference functions;
- read only (decoding every mask once): the reference's reader (`fusionseg.io.read_mask`, Pillow) vs
  the scorer's (`fusionseg.metrics.masks.read_foreground`, OpenCV for grey PNGs), which shows how
  much of the end-to-end time no scorer that reads these PNGs can avoid;
checks that both give identical per-frame and per-sequence numbers, and writes
benchmarks/results/score.{csv,md}. Run: python benchmarks/score.py
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fusionseg.io import read_mask, write_mask
from fusionseg.metrics.masks import read_foreground
from fusionseg.metrics.measures import frame_scores, sequence_statistics
from fusionseg.metrics.reference import reference_boundary_f, reference_jaccard, reference_statistics
from fusionseg.metrics.scoring import score_root

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
N_SEQUENCES = 20
SHIFTS = [(0, 0), (3, -2), (-4, 5), (6, 1)]
REPEATS = 2


def build_benchmark(workdir: Path) -> tuple[Path, Path]:
    """20 sequences: real ground truth, real predictions shifted by a few pixels per copy."""
    gt_root, pred_root = workdir / "gt", workdir / "pred"
    base = sorted(p.name for p in (DATA / "davis2016" / "Annotations" / "480p").iterdir())
    for k in range(N_SEQUENCES):
        source = base[k % len(base)]
        method = ("osvos", "rvos")[(k // len(base)) % 2]
        dy, dx = SHIFTS[k // len(base)]
        name = f"{source}-{k:02d}"
        gt_dir = DATA / "davis2016" / "Annotations" / "480p" / source
        (gt_root / "Annotations" / "480p").mkdir(parents=True, exist_ok=True)
        (gt_root / "Annotations" / "480p" / name).symlink_to(gt_dir)
        for path in sorted((DATA / "davis2017_predictions" / method / source).glob("*.png")):
            write_mask(pred_root / name / path.name, shifted(read_mask(path), dy, dx))
    return gt_root, pred_root


def shifted(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The mask moved by (dy, dx) pixels; what leaves the frame is dropped, what enters is background."""
    out = np.zeros_like(mask)
    height, width = mask.shape
    out[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = mask[
        max(-dy, 0) : height - max(dy, 0), max(-dx, 0) : width - max(dx, 0)
    ]
    return out


def reference_score_root(pred_root: Path, gt_root: Path) -> pd.DataFrame:
    """The straightforward way: every frame read and scored one after the other, inner frames."""
    rows = []
    for gt_dir in sorted((gt_root / "Annotations" / "480p").iterdir()):
        gt_paths = sorted(gt_dir.glob("*.png"))[1:-1]
        j_values, f_values = [], []
        for gt_path in gt_paths:
            gt = read_mask(gt_path)
            pred = read_mask(pred_root / gt_dir.name / gt_path.name)
            j_values.append(reference_jaccard(pred, gt))
            f_values.append(reference_boundary_f(pred, gt))
        rows.append(_row(gt_dir.name, j_values, f_values))
    return pd.DataFrame(rows)


def _row(sequence: str, j_values: list[float], f_values: list[float]) -> dict:
    j_mean, j_recall, j_decay = reference_statistics(j_values)
    f_mean, f_recall, f_decay = reference_statistics(f_values)
    return dict(sequence=sequence, J_mean=j_mean, J_recall=j_recall, J_decay=j_decay,
                F_mean=f_mean, F_recall=f_recall, F_decay=f_decay, n_frames=len(j_values))


def scored_paths(pred_root: Path, gt_root: Path) -> list[tuple[list[Path], list[Path]]]:
    """(prediction paths, ground-truth paths) of each sequence's inner frames."""
    sequences = []
    for gt_dir in sorted((gt_root / "Annotations" / "480p").iterdir()):
        gt_paths = sorted(gt_dir.glob("*.png"))[1:-1]
        sequences.append(([pred_root / gt_dir.name / p.name for p in gt_paths], gt_paths))
    return sequences


def load_all(sequences, reader) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.stack([reader(p) for p in preds]), np.stack([reader(p) for p in gts])) for preds, gts in sequences]


def foreground_counts(sequences, reader) -> list[int]:
    """Decode every mask and keep only its foreground pixel count (keeping ~900 frame pairs in memory
    would time page faults, not decoding)."""
    return [int(np.count_nonzero(reader(p))) for preds, gts in sequences for p in preds + gts]


def read_only(sequences):
    ours, *ours_s = timed(foreground_counts, sequences, read_foreground)
    reference, *reference_s = timed(foreground_counts, sequences, read_mask)
    return ours_s, reference_s, ours == reference


def timed(function, *args):
    """(result, wall seconds, CPU seconds of this process) of the fastest of REPEATS runs: other jobs share the
    machine, and the fastest run is the one they disturbed least (also the one after caches are warm);
    CPU time is the fairer figure on a busy machine."""
    runs = []
    for _ in range(REPEATS):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = function(*args)
        runs.append((result, time.perf_counter() - start, time.process_time() - start_cpu))
    return min(runs, key=lambda run: run[1])


def compute_only(pairs):
    fast, *fast_s = timed(lambda: [frame_scores(p, g) for p, g in pairs])
    slow, *slow_s = timed(
        lambda: [([reference_jaccard(a, b) for a, b in zip(p, g)], [reference_boundary_f(a, b) for a, b in zip(p, g)])
                 for p, g in pairs]
    )
    identical = all(
        np.array_equal(fj, sj) and np.array_equal(ff, sf) for (fj, ff), (sj, sf) in zip(fast, slow)
    )
    stats_identical = all(
        sequence_statistics(fj) == reference_statistics(list(sj)) for (fj, _), (sj, _) in zip(fast, slow)
    )
    return fast_s, slow_s, identical and stats_identical


def main() -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as workdir:
        gt_root, pred_root = build_benchmark(Path(workdir))
        reference, *reference_s = timed(reference_score_root, pred_root, gt_root)
        (ours_1, _), *ours_1_s = timed(score_root, pred_root, gt_root, None, "inner", 1)
        (ours_2, _), *ours_2_s = timed(score_root, pred_root, gt_root, None, "inner", 2)
        columns = list(reference.columns)
        identical_e2e = ours_1[columns].equals(reference[columns]) and ours_2[columns].equals(reference[columns])
        sequences = scored_paths(pred_root, gt_root)
        read_s, read_reference_s, identical_read = read_only(sequences)
        fast_s, slow_s, identical_compute = compute_only(load_all(sequences, read_mask))
    n_frames = int(reference["n_frames"].sum())
    load_after = os.getloadavg()
    e2e, compute, read = "end to end (read + score)", "compute only (masks in memory)", "read only (decode masks)"
    rows = [
        (e2e, "reference, frame by frame", *reference_s, *reference_s, identical_e2e),
        (e2e, "fusionseg score, 1 thread", *ours_1_s, *reference_s, identical_e2e),
        (e2e, "fusionseg score, 2 threads", *ours_2_s, *reference_s, identical_e2e),
        (compute, "reference, frame by frame", *slow_s, *slow_s, identical_compute),
        (compute, "fusionseg frame_scores", *fast_s, *slow_s, identical_compute),
        (read, "reference reader (Pillow)", *read_reference_s, *read_reference_s, identical_read),
        (read, "fusionseg read_foreground", *read_s, *read_reference_s, identical_read),
    ]
    table = pd.DataFrame(rows, columns=["task", "implementation", "seconds", "cpu_seconds", "ref_s", "ref_cpu_s", "identical"])
    table["ratio_to_reference"] = table["seconds"] / table["ref_s"]
    table["cpu_ratio_to_reference"] = table["cpu_seconds"] / table["ref_cpu_s"]
    table = table.drop(columns=["ref_s", "ref_cpu_s"])
    table.insert(2, "sequences", N_SEQUENCES)
    table.insert(3, "frames", n_frames)
    table["load_avg_1min_before"] = round(load_before[0], 2)
    table["load_avg_1min_after"] = round(load_after[0], 2)
    write_results(table, load_before, load_after)
    print(table.to_string(index=False))


def write_results(table: pd.DataFrame, load_before, load_after) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "score.csv", index=False)
    shown = table[["task", "implementation", "sequences", "frames", "seconds", "ratio_to_reference", "cpu_seconds",
                   "cpu_ratio_to_reference", "identical"]]
    cpu = table.set_index("implementation")["cpu_seconds"]
    decode_share = cpu["fusionseg read_foreground"] / cpu["fusionseg score, 1 thread"]
    lines = [
        "# Scoring: fusionseg vs a frame-by-frame NumPy + OpenCV reference",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, shared with other jobs: load average "
        f"(1, 5, 15 min, as `uptime` shows it) {_load(load_before)} before and {_load(load_after)} after the run. "
        f"Produced by `python benchmarks/score.py`; each time is the fastest of {REPEATS} runs. "
        "cpu_seconds: CPU time of the process (all its threads), the steadier figure while other jobs compete for the cores. `identical`: every per-frame J and F and every "
        "per-sequence statistic equal to the last digit (read rows: the same foreground pixel count in every mask).",
        "",
        f"Where the time goes: decoding the {2 * int(table['frames'].iloc[0])} PNGs is "
        f"{decode_share:.0%} of fusionseg's single-thread CPU time; zlib inflation inside the PNG decoder sets that "
        "floor for any scorer reading these files. The reference reads with Pillow, as the official toolkit does.",
        "",
        "| " + " | ".join(shown.columns) + " |",
        "|" + "---|" * len(shown.columns),
    ]
    for row in shown.itertuples(index=False):
        lines.append(
            f"| {row.task} | {row.implementation} | {row.sequences} | {row.frames} | {row.seconds:.2f} | "
            f"{row.ratio_to_reference:.3f} | {row.cpu_seconds:.2f} | {row.cpu_ratio_to_reference:.3f} | {row.identical} |"
        )
    (RESULTS / "score.md").write_text("\n".join(lines) + "\n")


def _load(load: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.2f}" for value in load)


if __name__ == "__main__":
    main()
