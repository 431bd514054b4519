"""Dataset summaries in the paper's layout: methods (rows) x datasets (J&F, J, F, average IoU).

Per dataset, every per-sequence statistic is averaged over sequences; J&F = (J_mean + F_mean) / 2 and
the paper's "average IoU" is the mean per-sequence Jaccard (the same number as J_mean, listed
under the name the paper uses for YouTube-Objects and SegTrack-v2). Values stay fractions in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fusionseg.errors import InputError
from fusionseg.io import read_table
from fusionseg.metrics.scoring import LABEL_COLUMNS, SEQUENCE_COLUMNS

# The paper's row order, then anything else in the order it was given.
METHOD_LABELS = {
    "flow-th": "Flow-Th",
    "flow-sal": "Flow-Sal",
    "saliency": "Saliency",
    "appearance": "Ours-A",
    "motion": "Ours-M",
    "joint": "Ours-Joint",
    "joint-tsn": "Ours-Joint+TSN",
    "segflow": "SegFlow",
    "tsn": "TSN",
    "tsn-pixel": "TSN (pixel stream)",
    "segflow-online": "SegFlow-online",
}
STATISTICS = ["J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"]
WIDE_MEASURES = [("J&F", "JF_mean"), ("J", "J_mean"), ("F", "F_mean"), ("avg IoU", "avg_iou")]


def read_scores(paths: list[Path]) -> pd.DataFrame:
    """Concatenate per-sequence score tables written by `fusionseg score`; errors name the file."""
    tables = [read_table(path, "scores table", SEQUENCE_COLUMNS + LABEL_COLUMNS) for path in paths]
    if not tables:
        raise InputError("no scores files given")
    return pd.concat(tables, ignore_index=True)


def read_summary(path: Path) -> pd.DataFrame:
    """A summary written by `fusionseg summarize` (paper layout); an error naming the file when it is
    not one: method, method_id, then only '<dataset> <measure>' columns, at least one."""
    table = read_table(path, "summary table", ["method", "method_id"])
    labels = tuple(f" {label}" for label, _ in WIDE_MEASURES)
    measures = [c for c in table.columns if c not in ("method", "method_id")]
    foreign = [c for c in measures if not c.endswith(labels)]
    if foreign or not measures:
        found = f"column(s) {', '.join(foreign)}" if foreign else "no measure columns"
        raise InputError(f"{path}: not a summary table ({found}; expected '<dataset> J&F', '<dataset> J', ...)")
    return table


def dataset_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Long-form summary: one row per (method, dataset) with every statistic averaged over sequences."""
    grouped = scores.groupby(["method", "dataset", "frames", "protocol"], sort=False)
    summary = grouped[STATISTICS].mean().reset_index()
    summary.insert(4, "n_sequences", grouped.size().to_numpy())
    summary["JF_mean"] = (summary["J_mean"] + summary["F_mean"]) / 2
    summary["avg_iou"] = summary["J_mean"]
    summary["method_label"] = summary["method"].map(lambda m: METHOD_LABELS.get(m, m))
    return summary.iloc[_method_order(summary["method"])].reset_index(drop=True)


def paper_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Wide table: one row per method (paper order), columns '<dataset> J&F', '<dataset> J', ..."""
    datasets = list(dict.fromkeys(summary["dataset"]))
    rows = []
    for method, group in summary.groupby("method", sort=False):
        row = {"method": METHOD_LABELS.get(method, method), "method_id": method}
        by_dataset = group.set_index("dataset")
        for dataset in datasets:
            for label, column in WIDE_MEASURES:
                value = by_dataset[column].get(dataset) if dataset in by_dataset.index else float("nan")
                row[f"{dataset} {label}"] = value
        rows.append(row)
    return pd.DataFrame(rows)


def _method_order(methods: pd.Series) -> list[int]:
    known = list(METHOD_LABELS)
    first_seen = {m: i for i, m in enumerate(dict.fromkeys(methods))}

    def rank(position: int) -> tuple[int, int]:
        method = methods.iloc[position]
        return (known.index(method), 0) if method in known else (len(known), first_seen[method])

    return sorted(range(len(methods)), key=rank)
