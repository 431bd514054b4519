"""The per-frame tests that turn an appearance prediction inside weak boxes into a pseudo label.

FusionSeg (Jain et al., CVPR 2017, Sec. 3.2) keeps a frame only when every box passes, in this order:
binarise the prediction, prune everything outside the boxes, then per box the box test (IoU of the
foreground's tight rectangle with the box), the fill test (a box that is almost all foreground is
probably a rectangle, not an object) and the flow test (the object must move differently from its
surroundings). Boxes are (x0, y0, x1, y1) in pixels with x1, y1 exclusive.

Conventions chosen here (the paper does not fix them):
- binarisation: foreground where p > threshold, comparing the stored values as float32 (the masks'
  convention, `fusionseg.infer.masks`, and DAVIS/OSVOS's);
- box test passes when IoU >= box_iou; an empty box fails;
- fill test fails when the foreground fraction of a box is > max_fill (exactly max_fill passes);
- flow test passes when the contrast is > min_flow_contrast (exactly the minimum fails);
- the doubled box keeps the centre to within half a pixel: x0 - w // 2 .. x1 + (w + 1) // 2, then is
  clipped to the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

Box = tuple[int, int, int, int]


class Stage(IntEnum):
    """How far a frame got through the funnel; KEPT means every test passed."""

    NO_BOX = 0
    BOX_TEST = 1
    FILL_TEST = 2
    FLOW_TEST = 3
    KEPT = 4


@dataclass(frozen=True)
class Thresholds:
    """The numbers of the `bootstrap` config section that the tests use."""

    threshold: float = 0.5
    box_iou: float = 0.75
    max_fill: float = 0.95
    min_flow_contrast: float = 30.0


@dataclass(frozen=True)
class FrameResult:
    """The outcome for one frame: the stage it failed at (or KEPT) and its masks."""

    stage: Stage
    binary: np.ndarray
    pruned: np.ndarray


def binarise(prob: np.ndarray, threshold: float) -> np.ndarray:
    """Foreground (True) where the probability is > threshold."""
    return prob.astype(np.float32) > np.float32(threshold)


def prune(mask: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """Set every pixel outside all boxes to background."""
    inside = np.zeros_like(mask, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        inside[y0:y1, x0:x1] = True
    return mask & inside


def box_iou(mask: np.ndarray, box: Box) -> float:
    """IoU between a box and the tight rectangle around the foreground inside it (0 when empty)."""
    x0, y0, x1, y1 = box
    crop = mask[y0:y1, x0:x1]
    rows = np.flatnonzero(crop.any(axis=1))
    cols = np.flatnonzero(crop.any(axis=0))
    if rows.size == 0:
        return 0.0
    # The tight rectangle lies inside the box, so the IoU is the ratio of the areas.
    tight_area = (rows[-1] + 1 - rows[0]) * (cols[-1] + 1 - cols[0])
    return float(tight_area) / float((x1 - x0) * (y1 - y0))


def fill_fraction(mask: np.ndarray, box: Box) -> float:
    """Fraction of the box's pixels that are foreground."""
    x0, y0, x1, y1 = box
    return float(np.count_nonzero(mask[y0:y1, x0:x1])) / float((x1 - x0) * (y1 - y0))


def doubled_box(box: Box, height: int, width: int) -> Box:
    """The box twice as wide and high around the same centre, clipped to the image."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return (max(0, x0 - w // 2), max(0, y0 - h // 2), min(width, x1 + (w + 1) // 2), min(height, y1 + (h + 1) // 2))


def flow_contrast(flow_rgb: np.ndarray, box: Box) -> float:
    """2-norm between the mean flow colour inside the box and inside its doubled box."""
    height, width = flow_rgb.shape[:2]
    inner = _mean_colour(flow_rgb, box)
    outer = _mean_colour(flow_rgb, doubled_box(box, height, width))
    return float(np.linalg.norm(inner - outer))


def clip_box(box: Box, height: int, width: int) -> Box | None:
    """The part of a box inside the image, or None when nothing of it is inside."""
    x0, y0, x1, y1 = box
    clipped = (max(0, x0), max(0, y0), min(width, x1), min(height, y1))
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        return None
    return clipped


def evaluate_frame(prob: np.ndarray, flow_rgb: np.ndarray, boxes: list[Box], limits: Thresholds) -> FrameResult:
    """Run the funnel on one frame; boxes must already lie inside the image."""
    binary = binarise(prob, limits.threshold)
    pruned = prune(binary, boxes)
    if not boxes:
        return FrameResult(Stage.NO_BOX, binary, pruned)
    stage = _first_failure(pruned, flow_rgb, boxes, limits)
    return FrameResult(stage, binary, pruned)


def _first_failure(pruned: np.ndarray, flow_rgb: np.ndarray, boxes: list[Box], limits: Thresholds) -> Stage:
    # Tests run in the paper's order over all boxes, so the funnel counts are cumulative.
    if any(box_iou(pruned, box) < limits.box_iou for box in boxes):
        return Stage.BOX_TEST
    if any(fill_fraction(pruned, box) > limits.max_fill for box in boxes):
        return Stage.FILL_TEST
    if any(flow_contrast(flow_rgb, box) <= limits.min_flow_contrast for box in boxes):
        return Stage.FLOW_TEST
    return Stage.KEPT


def _mean_colour(image: np.ndarray, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1].reshape(-1, image.shape[2]).mean(axis=0, dtype=np.float64)
