"""Scoring mask folders against a DAVIS-layout ground-truth root: per-frame and per-sequence tables.

Predictions: PRED_ROOT/<seq>/<frame>.png, any mask PNG (palette or grey; label > 0 is foreground).
Ground truth: DAVIS_ROOT/Annotations/<resolution>/<seq>/<frame>.png (480p, or `source`: the native
size this pipeline's frame folders keep for scoring), possibly sparse: only annotated frames are
scored. Frame selection `inner` drops the first and last annotated frame (the DAVIS-2016 toolkit
convention; for dense annotation these are the sequence's first and last frames), `all` keeps all.
The semi-supervised protocol also drops the first annotated frame, whose mask the method was given
(with `inner` that is already the case, as in the DAVIS-2017 toolkit). Per-object scoring (DAVIS-2017):
masks hold object ids 1..254, 255 is void (left out of both masks); each object of the first
annotated frame is scored on its own (one row per object), and summaries average over objects.
Sequences are scored in parallel threads (PNG decoding and the OpenCV measures release the GIL), so
decoding in one thread overlaps computing in another.
"""

from __future__ import annotations

import contextlib
import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from fusionseg.datasets.layout import RESOLUTION, Sequence, frame_name
from fusionseg.errors import InputError
from fusionseg.metrics.masks import read_foreground, read_labels
from fusionseg.metrics.measures import boundary_radius, frame_pair_scores, sequence_statistics

FRAME_MODES = ("inner", "all")
PROTOCOLS = ("unsupervised", "semi-supervised")
SEQUENCE_COLUMNS = ["sequence", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"]
FRAME_COLUMNS = ["sequence", "object", "frame", "J", "F"]
LABEL_COLUMNS = ["method", "dataset", "frames", "protocol"]
# Where a row comes from: the object (0: all objects merged) and the sizes the network saw and that were scored.
DETAIL_COLUMNS = ["object", "n_frames", "net_size", "scored_size"]
FRAMES_PER_BATCH = 16
VOID_LABEL = 255


@dataclass(frozen=True)
class ScoreOptions:
    """How ground truth is read and which frames and objects are scored."""

    frames: str = "inner"
    protocol: str = "unsupervised"
    per_object: bool = False
    gt_resolution: str = RESOLUTION

    def __post_init__(self) -> None:
        if self.frames not in FRAME_MODES:
            raise InputError(f"frames: '{self.frames}' is not one of {', '.join(FRAME_MODES)}")
        if self.protocol not in PROTOCOLS:
            raise InputError(f"protocol: '{self.protocol}' is not one of {', '.join(PROTOCOLS)}")


@dataclass(frozen=True)
class SequenceScores:
    """Per-frame J and F of one sequence (or one object of it), for the frames that were scored."""

    sequence: str
    frames: list[int]
    j_values: np.ndarray
    f_values: np.ndarray
    object_id: int = 0
    net_size: str = ""
    scored_size: str = ""

    def summary_row(self) -> dict:
        j_mean, j_recall, j_decay = sequence_statistics(self.j_values)
        f_mean, f_recall, f_decay = sequence_statistics(self.f_values)
        return {
            "sequence": self.sequence,
            "J_mean": j_mean,
            "J_recall": j_recall,
            "J_decay": j_decay,
            "F_mean": f_mean,
            "F_recall": f_recall,
            "F_decay": f_decay,
            "object": self.object_id,
            "n_frames": len(self.frames),
            "net_size": self.net_size,
            "scored_size": self.scored_size,
        }

    def frame_rows(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"sequence": self.sequence, "object": self.object_id, "frame": self.frames, "J": self.j_values, "F": self.f_values}
        )


def gt_sequences(gt_root: Path, resolution: str = RESOLUTION) -> list[str]:
    """Sequence names of a ground-truth root (folders under Annotations/<resolution>)."""
    base = Path(gt_root) / "Annotations" / resolution
    if not base.is_dir():
        raise InputError(f"{base}: not a DAVIS-layout ground-truth root (no Annotations/{resolution} folder)")
    return sorted(p.name for p in base.iterdir() if p.is_dir())


def scored_frames(annotated: list[int], mode: str, protocol: str = "unsupervised") -> list[int]:
    """The annotated frame indices scored under `mode` (inner or all) and `protocol`."""
    if mode not in FRAME_MODES:
        raise InputError(f"frames: '{mode}' is not one of {', '.join(FRAME_MODES)}")
    frames = annotated[1:-1] if mode == "inner" else list(annotated)
    if protocol == "semi-supervised" and annotated:
        frames = [i for i in frames if i != annotated[0]]
    return frames


def score_sequence(
    pred_dir: Path, gt_root: Path, sequence: str, options: ScoreOptions = ScoreOptions()
) -> list[SequenceScores]:
    """Read and score one sequence: one result, or one per object; errors name the offending file."""
    Sequence(gt_root, sequence).check_published()
    gt_dir = Path(gt_root) / "Annotations" / options.gt_resolution / sequence
    annotated = _numbered_pngs(gt_dir)
    frames = scored_frames(sorted(annotated), options.frames, options.protocol)
    if not frames:
        raise InputError(
            f"{gt_dir}: no frames to score with --frames {options.frames} and the {options.protocol} "
            f"protocol ({len(annotated)} annotated)"
        )
    predicted = _numbered_pngs(pred_dir)
    _check_prediction_frames(pred_dir, predicted, frames, _sequence_length(gt_root, sequence, annotated))
    gt_paths, pred_paths = [annotated[i] for i in frames], [predicted[i] for i in frames]
    if options.per_object:
        objects = _object_ids(annotated[min(annotated)])
        scores = _score_objects(gt_paths, pred_paths, objects)
    else:
        objects, scores = [0], [_score_frames(gt_paths, pred_paths)]
    net_size, scored_size = _net_size(gt_root, sequence), _mask_size(gt_paths[0])
    return [
        SequenceScores(
            sequence, frames, np.array([j for j, _ in per_frame], dtype=np.float64),
            np.array([f for _, f in per_frame], dtype=np.float64), object_id, net_size, scored_size,
        )
        for object_id, per_frame in zip(objects, scores)
    ]


def score_root(
    pred_root: Path,
    gt_root: Path,
    sequences: list[str] | None = None,
    mode: str = "inner",
    threads: int = 1,
    *,
    protocol: str = "unsupervised",
    per_object: bool = False,
    gt_resolution: str = RESOLUTION,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every (or the named) ground-truth sequence: (per-sequence table, per-frame table)."""
    options = ScoreOptions(mode, protocol, per_object, gt_resolution)
    pred_root, gt_root = Path(pred_root), Path(gt_root)
    available = gt_sequences(gt_root, gt_resolution)
    wanted = sequences or available
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise InputError(f"{gt_root}: no ground truth for sequence(s) {', '.join(unknown)}")
    for sequence in wanted:
        if not (pred_root / sequence).is_dir():
            raise InputError(f"{pred_root / sequence}: prediction folder not found")
    with _opencv_single_threaded(), ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        jobs = pool.map(lambda s: score_sequence(pred_root / s, gt_root, s, options), wanted)
        results = [r for rows in tqdm(jobs, total=len(wanted), desc="score", unit="seq", leave=False) for r in rows]
    per_sequence = pd.DataFrame([r.summary_row() for r in results])
    per_frame = pd.concat([r.frame_rows() for r in results], ignore_index=True)
    return per_sequence, per_frame


def label_tables(
    per_sequence: pd.DataFrame,
    per_frame: pd.DataFrame,
    method: str,
    dataset: str,
    mode: str,
    protocol: str = "unsupervised",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add the method/dataset/frames/protocol columns after the measures, in the published column order."""
    labels = {"method": method, "dataset": dataset, "frames": mode, "protocol": protocol}
    per_sequence = per_sequence.assign(**labels)
    per_frame = per_frame.assign(**labels)
    return (
        per_sequence[SEQUENCE_COLUMNS + LABEL_COLUMNS + DETAIL_COLUMNS],
        per_frame[FRAME_COLUMNS + LABEL_COLUMNS],
    )


def frames_table_path(scores_path: Path) -> Path:
    """The per-frame table beside a per-sequence table: scores.csv -> scores.frames.csv."""
    scores_path = Path(scores_path)
    return scores_path.with_name(f"{scores_path.stem}.frames.csv")


@contextlib.contextmanager
def _opencv_single_threaded() -> Iterator[None]:
    """OpenCV's own threads off while scoring: the windows are small, so splitting each operation
    costs more in hand-offs than it gains (measured: more CPU time, and slower on a busy machine);
    `--threads` parallelises whole sequences instead. The caller's setting is restored."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def _numbered_pngs(folder: Path) -> dict[int, Path]:
    """Frame index -> PNG path for files named by frame number; other names are an error."""
    if not folder.is_dir():
        raise InputError(f"{folder}: mask folder not found")
    found = {}
    for path in sorted(folder.glob("*.png")):
        if not path.stem.isdigit():
            raise InputError(f"{path}: mask files must be named by frame number (00000.png, 00001.png, ...)")
        found[int(path.stem)] = path
    return found


def _sequence_length(gt_root: Path, sequence: str, annotated: dict[int, Path]) -> int:
    """Frames in the sequence: its JPEGImages folder when present, else up to the last annotation."""
    frames_dir = Path(gt_root) / "JPEGImages" / RESOLUTION / sequence
    if frames_dir.is_dir():
        return sum(1 for p in frames_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return max(annotated) + 1


def _check_prediction_frames(pred_dir: Path, predicted: dict[int, Path], scored: list[int], length: int) -> None:
    missing = [i for i in scored if i not in predicted]
    if missing:
        raise InputError(
            f"{pred_dir / (frame_name(missing[0]) + '.png')}: prediction missing "
            f"({len(missing)} scored frame(s) have no prediction)"
        )
    extra = [i for i in predicted if i >= length]
    if extra:
        raise InputError(
            f"{predicted[extra[0]]}: extra prediction, the sequence has only {length} frames "
            f"({len(extra)} extra file(s))"
        )


def _net_size(gt_root: Path, sequence: str) -> str:
    """WIDTHxHEIGHT of the frames the networks saw, from this pipeline's frame table ('' elsewhere)."""
    table_path = Sequence(gt_root, sequence).table_path
    if not table_path.is_file():
        return ""
    first = pd.read_csv(table_path).iloc[0]
    return f"{int(first['width'])}x{int(first['height'])}"


def _mask_size(path: Path) -> str:
    height, width = read_foreground(path).shape
    return f"{width}x{height}"


def _object_ids(first_gt: Path) -> list[int]:
    """The objects of a sequence: the ids (1..254) of its first annotated frame."""
    labels = read_labels(first_gt)
    ids = [int(i) for i in np.unique(labels) if 0 < i < VOID_LABEL]
    if not ids:
        raise InputError(
            f"{first_gt}: no object ids 1..254 to score per object (a 0/255 mask merges the objects: "
            "extract with merge_objects false)"
        )
    return ids


def _score_objects(gt_paths: list[Path], pred_paths: list[Path], objects: list[int]) -> list[list[tuple[float, float]]]:
    """Per object, (J, F) per frame: each object against the prediction's pixels of its id, void left out."""
    scores: list[list[tuple[float, float]]] = [[] for _ in objects]
    for gt_path, pred_path in zip(gt_paths, pred_paths):
        gt, pred = read_labels(gt_path), read_labels(pred_path)
        _require_size(pred, gt.shape, f"{pred_path}: prediction", f"ground truth {gt_path}")
        cared = gt != VOID_LABEL
        radius = boundary_radius(*gt.shape)
        for k, object_id in enumerate(objects):
            scores[k].append(frame_pair_scores((pred == object_id) & cared, gt == object_id, radius))
    return scores


def _score_frames(gt_paths: list[Path], pred_paths: list[Path]) -> list[tuple[float, float]]:
    """(J, F) per frame, each mask read once. Masks are decoded a batch at a time and then scored:
    alternating the PNG decoder and the measures frame by frame was measured a tenth slower (each
    evicts the other's code and buffers from the caches)."""
    pairs = _read_pairs(gt_paths, pred_paths)
    scores = []
    while batch := list(itertools.islice(pairs, FRAMES_PER_BATCH)):
        scores += [frame_pair_scores(pred, gt, boundary_radius(*gt.shape)) for pred, gt in batch]
    return scores


def _read_pairs(gt_paths: list[Path], pred_paths: list[Path]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(prediction, ground truth) foreground masks frame by frame; errors name the mis-sized file."""
    first_shape = None
    for gt_path, pred_path in zip(gt_paths, pred_paths):
        gt = read_foreground(gt_path)
        first_shape = first_shape or gt.shape
        _require_size(gt, first_shape, f"{gt_path}: mask", gt_paths[0].name)
        pred = read_foreground(pred_path)
        _require_size(pred, gt.shape, f"{pred_path}: prediction", f"ground truth {gt_path}")
        yield pred, gt


def _require_size(mask: np.ndarray, shape: tuple[int, ...], what: str, other: str) -> None:
    if mask.shape != shape:
        raise InputError(f"{what} is {mask.shape[1]}x{mask.shape[0]} but {other} is {shape[1]}x{shape[0]}")
