"""The DAVIS region (J) and boundary (F) measures and the per-sequence statistics, fast.

Definitions (official DAVIS toolkit):
- J: |S and G| / |S or G| on bool masks; 1 when the union is empty.
- F: one-pixel boundary maps (the seg2bmap rule, see `boundary_map`); each boundary dilated by the
  disk of radius ceil(0.008 * image diagonal); precision = predicted boundary pixels inside the
  dilated ground-truth boundary / predicted boundary pixels, recall the converse; F = 2PR / (P+R).
- Per sequence: mean, recall (fraction of frames > 0.5) and decay (first quarter minus last quarter).

Speed comes from two exact shortcuts. (1) Only the window around the objects is processed: outside
the bounding box of S or G (grown by one pixel) both masks and both boundary maps are zero. (2) The
dilations are never built: a boundary pixel lies in the other boundary's dilation exactly when one
of the disk's 2r+1 horizontal runs around it holds a pixel of that boundary, which row-wise prefix
sums answer with two lookups per run, at the (few) boundary pixels only.
"""

from __future__ import annotations

import functools
import math

import numpy as np

BOUNDARY_FRACTION = 0.008
DECAY_BINS = 4
RECALL_THRESHOLD = 0.5


def boundary_radius(height: int, width: int) -> int:
    """Tolerance radius in pixels: ceil(0.008 * sqrt(H^2 + W^2)) (8 at 854x480)."""
    return math.ceil(BOUNDARY_FRACTION * math.sqrt(height * height + width * width))


def disk_footprint(radius: int) -> np.ndarray:
    """The skimage `disk` footprint as uint8: offsets (dy, dx) with dx^2 + dy^2 <= r^2."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius).astype(np.uint8)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """seg2bmap: True where the mask differs from its east, south or south-east neighbour.

    The last row compares with the east neighbour only, the last column with the south neighbour
    only, and the bottom-right pixel is never boundary.
    """
    mask = np.asarray(mask, dtype=bool)
    bmap = np.zeros_like(mask)
    core = mask[:-1, :-1]
    bmap[:-1, :-1] = (core != mask[:-1, 1:]) | (core != mask[1:, :-1]) | (core != mask[1:, 1:])
    bmap[-1, :-1] = mask[-1, :-1] != mask[-1, 1:]
    bmap[:-1, -1] = mask[:-1, -1] != mask[1:, -1]
    return bmap


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """Region similarity J of one frame (bool masks of the same shape)."""
    union = np.count_nonzero(pred | gt)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(pred & gt) / union)


def boundary_f(pred: np.ndarray, gt: np.ndarray, radius: int) -> float:
    """Boundary measure F of one frame; `radius` is `boundary_radius(H, W)`."""
    window = _object_window(pred, gt)
    if window is None:
        return 1.0
    pred_boundary = boundary_map(pred[window])
    gt_boundary = boundary_map(gt[window])
    n_pred = np.count_nonzero(pred_boundary)
    n_gt = np.count_nonzero(gt_boundary)
    if n_pred == 0 or n_gt == 0:
        precision, recall = _precision_recall_without_match(n_pred, n_gt)
    else:
        precision = _count_within_disk(pred_boundary, gt_boundary, radius) / float(n_pred)
        recall = _count_within_disk(gt_boundary, pred_boundary, radius) / float(n_gt)
    return _f_from(precision, recall)


def frame_scores(preds: np.ndarray, gts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F (float64 arrays) for stacks of bool masks (N, H, W)."""
    if preds.shape != gts.shape:
        raise ValueError(f"prediction stack {preds.shape} and ground truth stack {gts.shape} differ")
    radius = boundary_radius(*gts.shape[1:])
    j_values = np.array([jaccard(p, g) for p, g in zip(preds, gts)], dtype=np.float64)
    f_values = np.array([boundary_f(p, g, radius) for p, g in zip(preds, gts)], dtype=np.float64)
    return j_values, f_values


def decay_bin_edges(n_frames: int) -> np.ndarray:
    """The DAVIS decay bin edges round(linspace(1, N, 5) + 1e-10) - 1, as plain integers.

    The official toolkit casts these to uint8, which wraps for sequences longer than 256 frames;
    integers keep the intended quarters for any length (identical results up to 256 frames).
    """
    return (np.round(np.linspace(1, n_frames, DECAY_BINS + 1) + 1e-10) - 1).astype(np.int64)


def sequence_statistics(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, recall, decay) of one sequence's per-frame values; bins are inclusive at both ends."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no frames to summarise")
    edges = decay_bin_edges(values.size)
    bins = [values[edges[i] : edges[i + 1] + 1] for i in range(DECAY_BINS)]
    mean = float(np.mean(values))
    recall = float(np.mean(values > RECALL_THRESHOLD))
    decay = float(np.mean(bins[0]) - np.mean(bins[-1]))
    return mean, recall, decay


def _count_within_disk(source: np.ndarray, target: np.ndarray, radius: int) -> int:
    """Number of `source` pixels with a `target` pixel at a disk offset: |source and dilate(target)|.

    The disk is a stack of horizontal runs, |dx| <= isqrt(r^2 - dy^2) for each row offset dy, and
    whether a run holds a target pixel is a difference of two row-wise prefix sums. The target is
    padded (radius rows and columns, plus the prefix sum's leading zero column) so every lookup stays
    inside the array; outside the image there is nothing to match, as with the toolkit's dilation.
    """
    height, width = target.shape
    padded_width = width + 2 * radius + 1
    padded = np.zeros((height + 2 * radius, padded_width), dtype=np.int32)
    padded[radius : radius + height, radius + 1 : radius + 1 + width] = target
    prefix = np.cumsum(padded, axis=1).ravel()
    flat = np.flatnonzero(source)
    centres = (flat // width + radius) * padded_width + (flat % width + radius + 1)
    row_steps, half_widths = _disk_runs(radius)
    row_starts = centres[:, None] + row_steps[None, :] * padded_width
    inside = prefix[row_starts + half_widths[None, :]] - prefix[row_starts - half_widths[None, :] - 1]
    return int(np.count_nonzero((inside > 0).any(axis=1)))


@functools.lru_cache(maxsize=32)
def _disk_runs(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Row offsets dy of the disk and the half-width of its run on each row."""
    row_steps = np.arange(-radius, radius + 1)
    half_widths = np.array([math.isqrt(radius * radius - dy * dy) for dy in row_steps])
    return row_steps, half_widths


def _precision_recall_without_match(n_pred: int, n_gt: int) -> tuple[int, int]:
    """The toolkit's fixed values when one boundary (or both) is empty."""
    if n_pred == 0 and n_gt > 0:
        return 1, 0
    if n_pred > 0 and n_gt == 0:
        return 0, 1
    return 1, 1


def _f_from(precision: float, recall: float) -> float:
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def _object_window(pred: np.ndarray, gt: np.ndarray) -> tuple[slice, slice] | None:
    """Bounding box of pred or gt grown by one pixel on every side (clipped), or None if both are empty.

    One pixel before the box is needed because a background pixel whose south or east neighbour is
    foreground is a boundary pixel; one pixel after keeps the last-row/last-column rule for the
    image edge only.
    """
    rows = np.flatnonzero(pred.any(axis=1) | gt.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(pred.any(axis=0) | gt.any(axis=0))
    height, width = gt.shape
    return (
        slice(max(rows[0] - 1, 0), min(rows[-1] + 2, height)),
        slice(max(cols[0] - 1, 0), min(cols[-1] + 2, width)),
    )
