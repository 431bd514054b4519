"""Straightforward frame-by-frame DAVIS J and F, transcribed from the definitions.

This is the yardstick for `fusionseg.metrics.measures`: full-frame boundary maps built from shifted
copies (east, south, south-east) the way the official toolkit's seg2bmap does, full-frame dilation,
and loops over frames and decay bins. The tests and `benchmarks/score.py` require both to give
identical numbers; the benchmark also times both.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def reference_jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    pred = pred.astype(bool)
    gt = gt.astype(bool)
    inter = np.sum(pred & gt)
    union = np.sum(pred | gt)
    return 1.0 if union == 0 else float(inter / union)


def reference_boundary_map(mask: np.ndarray) -> np.ndarray:
    seg = mask.astype(bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def reference_disk(radius: int) -> np.ndarray:
    """Disk footprint built point by point (independent of the vectorised one)."""
    size = 2 * radius + 1
    disk = np.zeros((size, size), dtype=np.uint8)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx * dx + dy * dy <= radius * radius:
                disk[dy + radius, dx + radius] = 1
    return disk


def reference_boundary_f(pred: np.ndarray, gt: np.ndarray) -> float:
    radius = math.ceil(0.008 * np.linalg.norm(gt.shape))
    disk = reference_disk(radius)
    pred_boundary = reference_boundary_map(pred)
    gt_boundary = reference_boundary_map(gt)
    pred_dilated = cv2.dilate(pred_boundary.astype(np.uint8), disk)
    gt_dilated = cv2.dilate(gt_boundary.astype(np.uint8), disk)
    n_pred = np.sum(pred_boundary)
    n_gt = np.sum(gt_boundary)
    if n_pred == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_pred > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_pred == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(pred_boundary * gt_dilated) / float(n_pred)
        recall = np.sum(gt_boundary * pred_dilated) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def reference_statistics(values: list[float]) -> tuple[float, float, float]:
    """(mean, recall, decay); quarter edges computed one by one from the toolkit's formula.

    Means use NumPy's (pairwise) summation, as the toolkit does, so results agree to the last digit.
    """
    n = len(values)
    array = np.array(values, dtype=np.float64)
    recall = sum(1 for v in values if v > 0.5) / n
    edges = [int(round(1 + k * (n - 1) / 4 + 1e-10)) - 1 for k in range(5)]
    first = array[edges[0] : edges[1] + 1]
    last = array[edges[3] : edges[4] + 1]
    return float(np.mean(array)), recall, float(np.mean(first) - np.mean(last))
