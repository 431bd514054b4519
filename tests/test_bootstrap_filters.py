"""The per-frame bootstrap tests on constructed frames, exactly at and either side of each threshold."""

from __future__ import annotations

import numpy as np
import pytest

from fusionseg.bootstrap.filters import (
    Stage,
    Thresholds,
    binarise,
    box_iou,
    clip_box,
    doubled_box,
    evaluate_frame,
    fill_fraction,
    flow_contrast,
    prune,
)

H, W = 40, 40
BOX = (10, 10, 30, 30)  # 20 x 20 = 400 pixels; its doubled box is the whole 40 x 40 image


def moving_flow(box=BOX, inside=200, outside=0) -> np.ndarray:
    """A flow image whose box is a different colour from the rest (passes the flow test)."""
    flow = np.full((H, W, 3), outside, np.uint8)
    x0, y0, x1, y1 = box
    flow[y0:y1, x0:x1] = inside
    return flow


def mask_rows(rows: int, box=BOX) -> np.ndarray:
    """Foreground over the box's full width and its first `rows` rows."""
    x0, y0, x1, _ = box
    mask = np.zeros((H, W), np.float16)
    mask[y0 : y0 + rows, x0:x1] = 1.0
    return mask


def test_binarise_is_strictly_greater_at_the_threshold_like_the_masks():
    below, at, above = np.float16(0.5) - np.float16(0.0005), np.float16(0.5), np.float16(0.5) + np.float16(0.0005)
    prob = np.array([[below, at, above]], dtype=np.float16)
    assert prob[0, 0] < 0.5 < prob[0, 2]
    assert binarise(prob, 0.5).tolist() == [[False, False, True]]
    assert binarise(np.array([[0.2498, 0.25, 0.2502]], np.float16), 0.25).tolist() == [[False, False, True]]


def test_prune_clears_everything_outside_all_boxes():
    mask = np.ones((H, W), bool)
    pruned = prune(mask, [(0, 0, 5, 5), (30, 35, 40, 40)])
    assert pruned.sum() == 25 + 50
    assert pruned[:5, :5].all() and pruned[35:, 30:].all()
    assert not pruned[5:35].any()


@pytest.mark.parametrize("rows, expected", [(14, Stage.BOX_TEST), (15, Stage.KEPT), (16, Stage.KEPT)])
def test_box_test_at_and_around_iou_075(rows, expected):
    assert box_iou(mask_rows(rows) > 0, BOX) == pytest.approx(rows / 20)
    assert evaluate_frame(mask_rows(rows), moving_flow(), [BOX], Thresholds()).stage == expected


def test_box_test_uses_the_tight_rectangle_not_the_pixel_count():
    mask = np.zeros((H, W), bool)
    mask[10, 10] = mask[29, 29] = True  # two pixels span the whole box
    assert box_iou(mask, BOX) == 1.0


def test_box_without_foreground_fails():
    assert box_iou(np.zeros((H, W), bool), BOX) == 0.0
    assert evaluate_frame(np.zeros((H, W), np.float16), moving_flow(), [BOX], Thresholds()).stage == Stage.BOX_TEST


@pytest.mark.parametrize("holes, expected", [(19, Stage.FILL_TEST), (20, Stage.KEPT), (21, Stage.KEPT)])
def test_fill_test_at_and_around_095(holes, expected):
    prob = mask_rows(20)
    interior = [(y, x) for y in range(12, 28) for x in range(12, 28)][:holes]
    for y, x in interior:  # holes inside the box keep the tight rectangle equal to the box
        prob[y, x] = 0
    assert fill_fraction(prob > 0, BOX) == (400 - holes) / 400
    assert evaluate_frame(prob, moving_flow(), [BOX], Thresholds()).stage == expected


@pytest.mark.parametrize("step, expected", [(39, Stage.FLOW_TEST), (40, Stage.FLOW_TEST), (41, Stage.KEPT)])
def test_flow_test_at_and_around_contrast_30(step, expected):
    box = (10, 10, 20, 20)  # 100 pixels; doubled box (5, 5, 25, 25) has 400, so the contrast is 0.75 * step
    flow = np.full((H, W, 3), 100, np.uint8)
    flow[10:20, 10:20, 0] = 100 + step
    assert flow_contrast(flow, box) == pytest.approx(0.75 * step)
    assert flow_contrast(moving_flow(box, 140, 100), box) == pytest.approx(0.75 * 40 * np.sqrt(3))
    prob = mask_rows(9, box)
    assert evaluate_frame(prob, flow, [box], Thresholds()).stage == expected


def test_flow_contrast_exactly_30_is_rejected():
    box = (10, 10, 20, 20)
    flow = np.zeros((H, W, 3), np.uint8)
    flow[10:20, 10:20, 1] = 40
    assert flow_contrast(flow, box) == 30.0
    assert evaluate_frame(mask_rows(9, box), flow, [box], Thresholds()).stage == Stage.FLOW_TEST
    assert evaluate_frame(mask_rows(9, box), flow, [box], Thresholds(min_flow_contrast=29.99)).stage == Stage.KEPT


def test_doubled_box_keeps_the_centre_and_is_clipped_at_the_borders():
    assert doubled_box((10, 10, 15, 17), 100, 100) == (8, 7, 18, 21)  # 10 x 14, twice 5 x 7
    assert doubled_box((0, 0, 10, 10), H, W) == (0, 0, 15, 15)
    assert doubled_box((30, 25, 40, 40), H, W) == (25, 18, 40, 40)


def test_flow_contrast_at_a_corner_averages_only_inside_the_image():
    box = (0, 0, 10, 10)
    flow = np.zeros((H, W, 3), np.uint8)
    flow[:10, :10, 2] = 200
    # Clipped doubled box (0, 0, 15, 15): 225 pixels of which 100 are the box.
    assert flow_contrast(flow, box) == pytest.approx(200 - 200 * 100 / 225)


def test_clip_box_keeps_the_part_inside_the_image():
    assert clip_box((-5, -5, 10, 50), H, W) == (0, 0, 10, 40)
    assert clip_box((40, 0, 50, 10), H, W) is None


def test_one_failing_box_discards_the_frame():
    second = (0, 0, 8, 8)
    prob = mask_rows(16)
    prob[0:8, 0:8] = 0  # the second box is empty
    flow = moving_flow()
    assert evaluate_frame(prob, flow, [BOX], Thresholds()).stage == Stage.KEPT
    assert evaluate_frame(prob, flow, [BOX, second], Thresholds()).stage == Stage.BOX_TEST


def test_frame_without_box_is_not_a_candidate():
    result = evaluate_frame(mask_rows(20), moving_flow(), [], Thresholds())
    assert result.stage == Stage.NO_BOX
    assert not result.pruned.any() and result.binary.sum() == 400


def test_thresholds_come_from_the_parameters():
    prob = mask_rows(14)  # IoU 0.7
    assert evaluate_frame(prob, moving_flow(), [BOX], Thresholds(box_iou=0.7)).stage == Stage.KEPT
    assert evaluate_frame(prob * np.float16(0.6), moving_flow(), [BOX], Thresholds(threshold=0.7)).stage == Stage.BOX_TEST
