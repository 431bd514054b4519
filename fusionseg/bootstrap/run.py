"""The bootstrap step on files: weak-video sequences in, shards + manifest + funnel + quality out.

Output folder layout (docs/architecture.md, `pseudo/`):
- `shards/` (format in `fusionseg.shards`), written as a whole under a temporary name;
- `funnel.csv`: per sequence and a `total` row: frames, no_box, candidates (frames with a box, which
  enter the box test), passed_box_test, passed_fill_test, kept (passed the flow test too);
- `quality.csv`: where ground-truth masks exist, per sequence and a `total` row, over the candidate
  frames that have a mask: Jaccard in [0, 1] of the binarised prediction (j_before_pruning), of the
  pruned mask (j_after_pruning) and of the pruned mask on the kept frames only (j_kept). Every figure
  is a mean over frames; the total row pools the frames of all sequences. Header only without masks;
- `manifest.csv`, written last: a manifest on disk always describes complete shards.
Previous outputs are removed once the inputs have been checked, so an interrupted run leaves no stale
manifest behind.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
from tqdm import tqdm

from fusionseg.bootstrap.filters import Box, Stage, Thresholds, clip_box, evaluate_frame
from fusionseg.bootstrap.report import funnel_row, funnel_table, log_funnel, quality_table
from fusionseg.datasets.layout import Sequence, frame_name
from fusionseg.errors import InputError
from fusionseg.infer.probs import open_probs, read_prob_frame
from fusionseg.io import atomic_dir, atomic_file, check_replaceable, read_image, read_mask
from fusionseg.metrics.measures import jaccard
from fusionseg.shards.writer import Sample, ShardWriter, write_manifest

log = logging.getLogger(__name__)

SHARDS_DIR = "shards"


@dataclass(frozen=True)
class SequenceInputs:
    """The three aligned inputs of one weak-video sequence."""

    frames_dir: Path
    probs_path: Path
    flow_rgb_dir: Path


@dataclass(frozen=True)
class CheckedSequence:
    """A sequence whose inputs agree in name, frame count and frame size."""

    sequence: Sequence
    frame_paths: list[Path]
    probs_path: Path
    flow_paths: list[Path]
    model_sha256: str
    boxes: dict[int, list[Box]]

    @property
    def dataset(self) -> str:
        return self.sequence.root.name


@dataclass
class Tally:
    """What the run collected besides the shards."""

    funnel_rows: list[dict]
    quality_frames: list[dict]


def run_bootstrap(inputs: list[SequenceInputs], out_dir: Path, params: dict[str, Any]) -> pd.DataFrame:
    """Filter every frame, write the kept ones into shards, and write the tables; return the funnel."""
    out_dir = Path(out_dir)
    checked = [check_sequence(item) for item in inputs]
    sources = [path for item in inputs for path in (item.frames_dir, item.probs_path, item.flow_rgb_dir)]
    _remove_previous_outputs(out_dir, sources)
    limits = Thresholds(params["threshold"], params["box_iou"], params["max_fill"], params["min_flow_contrast"])
    tally = Tally([], [])
    with atomic_dir(out_dir / SHARDS_DIR, "pseudo-label shards", sources) as shards_tmp:
        with ShardWriter(shards_tmp, params["shard_size"], params["compression"]) as writer:
            with tqdm(total=sum(len(c.frame_paths) for c in checked), desc="bootstrap", unit="frame") as progress:
                for item in checked:
                    _bootstrap_sequence(item, limits, params["store_rgb"], writer, tally, progress)
        rows = writer.rows
    funnel = funnel_table(tally.funnel_rows)
    quality = quality_table(tally.quality_frames)
    _write_csv(funnel, out_dir / "funnel.csv")
    _write_csv(quality, out_dir / "quality.csv")
    write_manifest(rows, out_dir / "manifest.csv", shard_prefix=f"{SHARDS_DIR}/")
    log_funnel(funnel, quality)
    return funnel


def check_sequence(item: SequenceInputs) -> CheckedSequence:
    """Open the inputs of one sequence and check they describe the same frames."""
    sequence = Sequence.from_frames_dir(item.frames_dir)
    frame_paths = sequence.frame_paths()
    for path, name in ((item.probs_path, Path(item.probs_path).stem), (item.flow_rgb_dir, Path(item.flow_rgb_dir).name)):
        if name != sequence.name:
            raise InputError(f"{path}: does not belong to sequence '{sequence.name}' (inputs misaligned?)")
    model_sha256 = _check_probs(Path(item.probs_path), len(frame_paths), read_image(frame_paths[0]).shape[:2])
    flow_paths = _flow_paths(Path(item.flow_rgb_dir), len(frame_paths))
    boxes = _boxes_by_frame(sequence, len(frame_paths))
    return CheckedSequence(sequence, frame_paths, Path(item.probs_path), flow_paths, model_sha256, boxes)


def _bootstrap_sequence(
    item: CheckedSequence, limits: Thresholds, store_rgb: bool, writer: ShardWriter, tally: Tally, progress: tqdm
) -> None:
    stages = []
    truth_paths = item.sequence.mask_paths()
    for index, prob, flow_rgb in _frames(item):
        # Boxes are clipped to the image; one wholly outside it covers no pixel, so it is dropped.
        boxes = [b for b in (clip_box(b, *prob.shape) for b in item.boxes.get(index, [])) if b is not None]
        result = evaluate_frame(prob, flow_rgb, boxes, limits)
        stages.append(result.stage)
        if result.stage != Stage.NO_BOX and index in truth_paths:
            truth = _read_truth(truth_paths[index], prob.shape)
            tally.quality_frames.append({
                "dataset": item.dataset, "sequence": item.sequence.name,
                "j_before": jaccard(result.binary, truth), "j_after": jaccard(result.pruned, truth),
                "kept": result.stage == Stage.KEPT,
            })
        if result.stage == Stage.KEPT:
            rgb = _read_rgb(item.frame_paths[index], prob.shape) if store_rgb else None
            writer.add(Sample(flow_rgb, result.pruned, item.dataset, item.sequence.name, index, boxes,
                              item.model_sha256, rgb))
        progress.update()
    tally.funnel_rows.append(funnel_row(item.dataset, item.sequence.name, stages))


def _frames(item: CheckedSequence) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(index, probability, colour-coded flow) per frame, each flow image checked against the prediction."""
    with open_probs(item.probs_path) as handle:
        for index, flow_path in enumerate(item.flow_paths):
            prob = read_prob_frame(handle, item.probs_path, index)
            flow_rgb = read_image(flow_path)
            if flow_rgb.shape[:2] != prob.shape:
                raise InputError(
                    f"{flow_path}: flow image is {flow_rgb.shape[1]}x{flow_rgb.shape[0]}, "
                    f"but {item.probs_path} frame {index} is {prob.shape[1]}x{prob.shape[0]}"
                )
            yield index, prob, flow_rgb


def _check_probs(path: Path, frames: int, size: tuple[int, int]) -> str:
    """Check the probability file's shape against the frames; return the model's sha256."""
    with open_probs(path) as handle:
        shape = handle["prob"].shape
        model_sha256 = handle["prob"].attrs.get("model_sha256", handle.attrs.get("model_sha256"))
    if shape != (frames, *size):
        raise InputError(f"{path}: 'prob' has shape {shape}, expected ({frames}, {size[0]}, {size[1]}) from the frames")
    if model_sha256 is None:
        raise InputError(f"{path}: attribute 'model_sha256' missing (provenance of the appearance model)")
    return str(model_sha256)


def _flow_paths(folder: Path, frames: int) -> list[Path]:
    paths = [folder / f"{frame_name(i)}.png" for i in range(frames)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: flow image not found ({len(missing)} of {frames} missing in {folder})")
    return paths


def _boxes_by_frame(sequence: Sequence, frames: int) -> dict[int, list[Box]]:
    table = sequence.boxes()
    bad = table[(table["frame"] < 0) | (table["frame"] >= frames)]
    if len(bad):
        raise InputError(f"{sequence.boxes_path}: frame {bad['frame'].iloc[0]} out of range (0..{frames - 1})")
    empty = table[(table["x1"] <= table["x0"]) | (table["y1"] <= table["y0"])]
    if len(empty):
        raise InputError(f"{sequence.boxes_path}: empty box for frame {empty['frame'].iloc[0]} (x1 <= x0 or y1 <= y0)")
    boxes: dict[int, list[Box]] = {}
    for frame, x0, y0, x1, y1 in table.itertuples(index=False):
        boxes.setdefault(int(frame), []).append((int(x0), int(y0), int(x1), int(y1)))
    return boxes


def _read_truth(path: Path, shape: tuple[int, int]) -> np.ndarray:
    truth = read_mask(path)
    if truth.shape != shape:
        raise InputError(f"{path}: mask is {truth.shape[1]}x{truth.shape[0]}, prediction is {shape[1]}x{shape[0]}")
    return truth


def _read_rgb(path: Path, shape: tuple[int, int]) -> np.ndarray:
    rgb = read_image(path)
    if rgb.shape[:2] != shape:
        raise InputError(f"{path}: frame is {rgb.shape[1]}x{rgb.shape[0]}, prediction is {shape[1]}x{shape[0]}")
    return rgb


def _remove_previous_outputs(out_dir: Path, sources: list[Path]) -> None:
    # A shards folder that is not ours stops the run before anything is removed.
    check_replaceable(out_dir / SHARDS_DIR, sources)
    # The manifest goes first: without it, no leftover shard is ever taken for a complete output.
    (out_dir / "manifest.csv").unlink(missing_ok=True)
    shutil.rmtree(out_dir / SHARDS_DIR, ignore_errors=True)


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False)
