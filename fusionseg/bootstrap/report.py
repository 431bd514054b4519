"""The funnel (how many frames pass each test) and the pseudo-label quality against ground truth."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from fusionseg.bootstrap.filters import Stage

log = logging.getLogger(__name__)

TOTAL = "total"
FUNNEL_COLUMNS = ["dataset", "sequence", "frames", "no_box", "candidates", "passed_box_test", "passed_fill_test", "kept"]
QUALITY_COLUMNS = ["dataset", "sequence", "frames", "j_before_pruning", "j_after_pruning", "kept_frames", "j_kept"]


def funnel_row(dataset: str, sequence: str, stages: list[Stage]) -> dict:
    """Cumulative counts: a frame that failed at a test entered it and every test before it."""
    reached = np.array([int(s) for s in stages], dtype=int)
    return {
        "dataset": dataset,
        "sequence": sequence,
        "frames": len(stages),
        "no_box": int(np.sum(reached == Stage.NO_BOX)),
        "candidates": int(np.sum(reached >= Stage.BOX_TEST)),
        "passed_box_test": int(np.sum(reached >= Stage.FILL_TEST)),
        "passed_fill_test": int(np.sum(reached >= Stage.FLOW_TEST)),
        "kept": int(np.sum(reached == Stage.KEPT)),
    }


def funnel_table(rows: list[dict]) -> pd.DataFrame:
    """Per-sequence funnel rows plus a total row."""
    table = pd.DataFrame(rows, columns=FUNNEL_COLUMNS)
    total = {"dataset": TOTAL, "sequence": TOTAL, **table[FUNNEL_COLUMNS[2:]].sum().astype(int).to_dict()}
    return pd.concat([table, pd.DataFrame([total], columns=FUNNEL_COLUMNS)], ignore_index=True)


def quality_table(frame_rows: list[dict]) -> pd.DataFrame:
    """Mean Jaccard per sequence and overall (the overall row averages over frames, not sequences).

    `frame_rows` has one row per candidate frame with ground truth: dataset, sequence, j_before
    (binarised prediction), j_after (pruned to the boxes), kept (bool).
    """
    frames = pd.DataFrame(frame_rows, columns=["dataset", "sequence", "j_before", "j_after", "kept"])
    if frames.empty:
        return pd.DataFrame(columns=QUALITY_COLUMNS)
    rows = [_quality_row(d, s, group) for (d, s), group in frames.groupby(["dataset", "sequence"], sort=False)]
    rows.append(_quality_row(TOTAL, TOTAL, frames))
    return pd.DataFrame(rows, columns=QUALITY_COLUMNS)


def log_funnel(funnel: pd.DataFrame, quality: pd.DataFrame) -> None:
    log.info("bootstrap funnel:\n%s", funnel.to_string(index=False))
    total = funnel.iloc[-1]
    log.info("kept %d of %d candidate frames (%d frames, %d without a box)",
             total["kept"], total["candidates"], total["frames"], total["no_box"])
    if not quality.empty:
        log.info("pseudo-label Jaccard (mean over frames):\n%s", quality.to_string(index=False))


def _quality_row(dataset: str, sequence: str, frames: pd.DataFrame) -> dict:
    kept = frames[frames["kept"]]
    return {
        "dataset": dataset,
        "sequence": sequence,
        "frames": len(frames),
        "j_before_pruning": frames["j_before"].mean(),
        "j_after_pruning": frames["j_after"].mean(),
        "kept_frames": len(kept),
        "j_kept": kept["j_after"].mean() if len(kept) else float("nan"),
    }
