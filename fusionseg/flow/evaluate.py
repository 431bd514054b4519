"""End-point error of flow methods on ground-truth pairs (`fusionseg.flow.ground_truth`).

A method maps a FlowPair (RGB images `rgb`, grey `grey`) to flow (H, W, 2), u then v, in pixels;
`pair_errors(flow, pair)` gives its EPE over valid and over non-occluded pixels, and `score_methods`
scores and times several methods on several pairs:

    from fusionseg.flow.evaluate import score_methods
    from fusionseg.flow.ground_truth import ground_truth_pairs
    scores = score_methods(ground_truth_pairs(data), {"mine": lambda pair: my_flow(*pair.rgb)})
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from fusionseg.flow.ground_truth import FlowPair

if TYPE_CHECKING:
    import pandas as pd

Method = Callable[[FlowPair], np.ndarray]


def endpoint_error(flow: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean end-point error (pixels) of flow (H, W, 2) against truth over the True pixels of mask."""
    return float(np.linalg.norm(flow - truth, axis=-1)[mask].mean())


def pair_errors(flow: np.ndarray, pair: FlowPair) -> dict[str, float]:
    """EPE over the pair's valid pixels and over its non-occluded ones (NaN where the set has no mask)."""
    return {
        "epe": endpoint_error(flow, pair.flow, pair.valid),
        "epe_noc": float("nan") if pair.non_occluded is None else endpoint_error(flow, pair.flow, pair.non_occluded),
    }


def score_methods(pairs: list[FlowPair], methods: dict[str, Method], repeats: int = 1) -> pd.DataFrame:
    """EPE (valid and non-occluded pixels) and best-of-`repeats` seconds of every method on every pair.

    One row per method and pair: method, dataset, pair, epe, epe_noc (NaN where the set has no
    occlusion mask), seconds. Each method is warmed up on the first pair before it is timed.
    """
    import pandas as pd

    rows = []
    for label, method in methods.items():
        method(pairs[0])
        for pair in pairs:
            seconds, flow = best_time(method, pair, repeats)
            errors = pair_errors(flow, pair)
            rows.append({"method": label, "dataset": pair.dataset, "pair": pair.name, **errors, "seconds": seconds})
            print(f"{label:26s} {pair.dataset:16s} {pair.name:12s} EPE {errors['epe']:7.3f}  {seconds:6.2f} s", flush=True)
    return pd.DataFrame(rows)


def best_time(method: Method, pair: FlowPair, repeats: int = 1) -> tuple[float, np.ndarray]:
    """The best of `repeats` wall-clock times of the method on the pair, and its flow."""
    best, flow = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        flow = method(pair)
        best = min(best, time.perf_counter() - start)
    return best, flow
