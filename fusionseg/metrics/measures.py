"""The DAVIS region (J) and boundary (F) measures and the per-sequence statistics, fast.

Definitions (official DAVIS toolkit):
- J: |S and G| / |S or G| on bool masks; 1 when the union is empty.
- F: one-pixel boundary maps (the seg2bmap rule, see `boundary_map`); each boundary dilated by the
  disk of radius ceil(0.008 * image diagonal); precision = predicted boundary pixels inside the
  dilated ground-truth boundary / predicted boundary pixels, recall the converse; F = 2PR / (P+R).
- Per sequence: mean, recall (fraction of frames > 0.5) and decay (first quarter minus last quarter).

Speed comes from exact shortcuts, each checked against the straightforward reference in the tests.
(1) Only the window around the objects is processed: outside the bounding box of S or G (grown by
one pixel) both masks and both boundary maps are zero. (2) Masks stay 0/1 uint8 images so every
step is one OpenCV call: a 2x2 morphological gradient gives the boundary map, and the disk dilation
is decomposed into short one-dimensional dilations (see `dilate_disk`).
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

BOUNDARY_FRACTION = 0.008
DECAY_BINS = 4
RECALL_THRESHOLD = 0.5
_BLOCK_2X2 = np.ones((2, 2), dtype=np.uint8)


def boundary_radius(height: int, width: int) -> int:
    """Tolerance radius in pixels: ceil(0.008 * sqrt(H^2 + W^2)) (8 at 854x480)."""
    return math.ceil(BOUNDARY_FRACTION * math.sqrt(height * height + width * width))


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """seg2bmap: True where the mask differs from its east, south or south-east neighbour.

    The last row compares with the east neighbour only, the last column with the south neighbour
    only, and the bottom-right pixel is never boundary.
    """
    return _boundary(_as_binary(mask)).view(bool)


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """Region similarity J of one frame (bool masks of the same shape)."""
    pred, gt = _as_binary(pred), _as_binary(gt)
    window = _object_window(pred, gt)
    return 1.0 if window is None else _jaccard_in_window(pred[window], gt[window])


def frame_pair_scores(pred: np.ndarray, gt: np.ndarray, radius: int) -> tuple[float, float]:
    """(J, F) of one frame, sharing the object window: bool masks of the same shape, F's `radius`."""
    pred, gt = _as_binary(pred), _as_binary(gt)
    window = _object_window(pred, gt)
    if window is None:
        return 1.0, 1.0
    pred, gt = pred[window], gt[window]
    return _jaccard_in_window(pred, gt), _boundary_f_in_window(pred, gt, radius)


def frame_scores(preds: np.ndarray, gts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F (float64 arrays) for stacks of bool masks (N, H, W)."""
    if preds.shape != gts.shape:
        raise ValueError(f"prediction stack {preds.shape} and ground truth stack {gts.shape} differ")
    radius = boundary_radius(*gts.shape[1:])
    scores = [frame_pair_scores(p, g, radius) for p, g in zip(preds, gts)]
    return np.array([j for j, _ in scores], dtype=np.float64), np.array([f for _, f in scores], dtype=np.float64)


def dilate_disk(image: np.ndarray, radius: int) -> np.ndarray:
    """`cv2.dilate` of a uint8 image by the skimage disk of `radius` (offsets with dx^2 + dy^2 <= r^2),
    from one-dimensional dilations.

    The disk is the union of its corner rectangles (half-height h_k, half-width w_k; h rising while
    w falls), so its dilation is max_k V(h_k) H(w_k) image, with H(w) and V(h) the dilations by a
    horizontal and a vertical segment. Segments add up (H(a) H(b) = H(a + b)), so each H(w_k) grows
    from the next narrower one while the V's nest (Horner's scheme), from the tallest corner down:
    only short segments are applied, about 3 passes per corner instead of one per disk pixel, and
    only two intermediate images are alive at a time (measured: keeping all of them is a third slower).
    """
    corners = _disk_corners(radius)
    widened = _dilate_segment(image, corners[-1][1], 0)
    nested = widened
    for k in reversed(range(len(corners) - 1)):
        widened = _dilate_segment(widened, corners[k][1] - corners[k + 1][1], 0)
        nested = cv2.max(widened, _dilate_segment(nested, 0, corners[k + 1][0] - corners[k][0]))
    return _dilate_segment(nested, 0, corners[0][0])


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


def _as_binary(mask: np.ndarray) -> np.ndarray:
    """A mask as a 0/1 uint8 image (a view, no copy, when it is already bool)."""
    return np.asarray(mask, dtype=bool).view(np.uint8)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """seg2bmap of a 0/1 uint8 mask, as 0/1 uint8.

    A pixel is boundary when the 2x2 block it opens (itself, east, south, south-east) is not uniform:
    the block's max minus min (a morphological gradient anchored at the top-left). Replicating the
    border makes the last row's south neighbours copies of itself, so it compares east only; likewise
    the last column compares south only and the bottom-right pixel never differs.
    """
    return cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, _BLOCK_2X2, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)


def _jaccard_in_window(pred: np.ndarray, gt: np.ndarray) -> float:
    """J from counts inside a window that holds the whole union (so the union is not empty)."""
    return cv2.countNonZero(cv2.bitwise_and(pred, gt)) / cv2.countNonZero(cv2.bitwise_or(pred, gt))


def _boundary_f_in_window(pred: np.ndarray, gt: np.ndarray, radius: int) -> float:
    pred_boundary = _boundary(pred)
    gt_boundary = _boundary(gt)
    n_pred = cv2.countNonZero(pred_boundary)
    n_gt = cv2.countNonZero(gt_boundary)
    if n_pred == 0 or n_gt == 0:
        precision, recall = _precision_recall_without_match(n_pred, n_gt)
    else:
        precision = _count_overlap(pred_boundary, dilate_disk(gt_boundary, radius)) / float(n_pred)
        recall = _count_overlap(gt_boundary, dilate_disk(pred_boundary, radius)) / float(n_gt)
    return _f_from(precision, recall)


def _count_overlap(first: np.ndarray, second: np.ndarray) -> int:
    return cv2.countNonZero(cv2.bitwise_and(first, second))


@functools.lru_cache(maxsize=32)
def _disk_corners(radius: int) -> tuple[tuple[int, int], ...]:
    """(half-height, half-width) of the disk's corner rectangles, by rising half-height.

    Row offset dy of the disk spans |dx| <= isqrt(r^2 - dy^2); a corner is a row after which that
    half-width shrinks (and the last row), and the rectangles up to the corners cover the disk.
    """
    half_widths = [math.isqrt(radius * radius - dy * dy) for dy in range(radius + 1)]
    return tuple(
        (dy, half_widths[dy]) for dy in range(radius + 1) if dy == radius or half_widths[dy + 1] < half_widths[dy]
    )


def _dilate_segment(image: np.ndarray, half_width: int, half_height: int) -> np.ndarray:
    """Dilation by a horizontal (half_height 0) or vertical (half_width 0) segment; none when both are 0.

    Outside the image nothing is dilated in (OpenCV's default border for dilation), as in the toolkit.
    """
    if half_width == 0 and half_height == 0:
        return image
    return cv2.dilate(image, _segment(half_width, half_height))


@functools.lru_cache(maxsize=64)
def _segment(half_width: int, half_height: int) -> np.ndarray:
    return np.ones((2 * half_height + 1, 2 * half_width + 1), dtype=np.uint8)


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
    image edge only. Takes 0/1 uint8 images.
    """
    boxes = [box for box in (cv2.boundingRect(pred), cv2.boundingRect(gt)) if box[2] > 0]
    if not boxes:
        return None
    height, width = gt.shape
    top = min(y for _, y, _, _ in boxes)
    left = min(x for x, _, _, _ in boxes)
    bottom = max(y + h for _, y, _, h in boxes)
    right = max(x + w for x, _, w, _ in boxes)
    return slice(max(top - 1, 0), min(bottom + 1, height)), slice(max(left - 1, 0), min(right + 1, width))
