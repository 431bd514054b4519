"""Ground-truth flow pairs and their end-point error (fusionseg.flow.ground_truth, fusionseg.flow.evaluate),
which benchmarks/flow.py and benchmarks/segflow.py score flow methods with."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fusionseg.flow.evaluate import endpoint_error, pair_errors, score_methods
from fusionseg.flow.ground_truth import DATASETS, FlowPair, dev_pairs, ground_truth_pairs


def _pair(non_occluded: np.ndarray | None) -> FlowPair:
    flow = np.zeros((4, 6, 2), np.float32)
    valid = np.ones((4, 6), bool)
    valid[0] = False
    image = np.zeros((4, 6, 3), np.uint8)
    return FlowPair("test", "p", (image, image), flow, valid, non_occluded)


def test_endpoint_error_over_the_masked_pixels() -> None:
    truth = np.zeros((2, 2, 2), np.float32)
    flow = np.array([[[3, 4], [0, 0]], [[0, 1], [6, 8]]], np.float32)
    assert endpoint_error(flow, truth, np.ones((2, 2), bool)) == pytest.approx((5 + 0 + 1 + 10) / 4)
    assert endpoint_error(flow, truth, np.array([[True, False], [False, True]])) == pytest.approx(7.5)


def test_pair_errors_valid_and_non_occluded() -> None:
    flow = np.ones((4, 6, 2), np.float32)  # EPE sqrt(2) everywhere
    flow[0] = 100  # invalid row: not counted
    errors = pair_errors(flow, _pair(None))
    assert errors["epe"] == pytest.approx(math.sqrt(2))
    assert math.isnan(errors["epe_noc"])
    visible = np.zeros((4, 6), bool)
    visible[1:, :3] = True
    flow[1:, :3] = 0
    assert pair_errors(flow, _pair(visible))["epe_noc"] == 0


def test_score_methods_one_row_per_method_and_pair(capsys) -> None:
    pairs = [_pair(None), _pair(None)]
    scores = score_methods(pairs, {"zero": lambda pair: np.zeros_like(pair.flow), "one": lambda pair: np.ones_like(pair.flow)})
    assert list(scores["method"]) == ["zero", "zero", "one", "one"]
    assert list(scores["epe"]) == pytest.approx([0, 0, math.sqrt(2), math.sqrt(2)])
    assert (scores["seconds"] >= 0).all()


@pytest.mark.shared_data
def test_real_ground_truth_pairs(shared_data: Path) -> None:
    pairs = ground_truth_pairs(shared_data)
    assert [p.dataset for p in pairs] == sorted((p.dataset for p in pairs), key=DATASETS.index)
    assert {p.dataset for p in pairs} == set(DATASETS)
    for pair in pairs:
        assert pair.flow.shape == (*pair.rgb[0].shape[:2], 2) == (*pair.valid.shape, 2)
        assert np.isfinite(pair.flow[pair.valid]).all() and pair.valid.mean() > 0.1  # KITTI: sparse (24%)
        assert pair_errors(pair.flow, pair)["epe"] == 0


@pytest.mark.shared_data
def test_dev_pairs_have_exact_flow(shared_data: Path) -> None:
    """The tuning pairs, rendered with fusionseg.datasets.synthetic: warping the second frame back by
    the flow gives the first on the visible pixels (up to interpolation)."""
    import cv2

    (pair,) = dev_pairs(shared_data, sizes=((120, 160),), per_size=1)
    height, width = pair.valid.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    back = cv2.remap(pair.rgb[1], xs + pair.flow[..., 0], ys + pair.flow[..., 1], cv2.INTER_LINEAR)
    difference = np.abs(back.astype(int) - pair.rgb[0])[pair.non_occluded]
    assert pair.non_occluded.mean() > 0.5
    assert np.median(difference) <= 8
