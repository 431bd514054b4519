"""DAVIS measures: hand-built cases with known answers, the fast vs reference implementation, real data."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from fusionseg.cli import main
from fusionseg.io import write_mask
from fusionseg.errors import InputError
from fusionseg.io import read_mask
from fusionseg.metrics.masks import read_foreground
from fusionseg.metrics.measures import (
    boundary_map,
    boundary_radius,
    decay_bin_edges,
    dilate_disk,
    frame_pair_scores,
    frame_scores,
    jaccard,
    sequence_statistics,
)
from fusionseg.metrics.reference import (
    reference_boundary_f,
    reference_boundary_map,
    reference_disk,
    reference_jaccard,
    reference_statistics,
)
from fusionseg.metrics.scoring import score_root


def square(shape, top, left, size):
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def radius_for(mask):
    return boundary_radius(*mask.shape)


# --- J ---------------------------------------------------------------------------------------------


def test_jaccard_known_overlap():
    pred = square((10, 10), 0, 0, 4)  # 16 pixels
    gt = square((10, 10), 2, 2, 4)  # 16 pixels, overlap 2x2 = 4
    assert jaccard(pred, gt) == 4 / 28


def test_jaccard_is_one_when_union_is_empty():
    empty = np.zeros((5, 7), dtype=bool)
    assert jaccard(empty, empty) == 1.0


def test_jaccard_zero_when_disjoint():
    assert jaccard(square((8, 8), 0, 0, 2), square((8, 8), 5, 5, 2)) == 0.0


# --- boundary maps and the disk --------------------------------------------------------------------


def test_boundary_map_of_a_square_follows_seg2bmap():
    mask = square((6, 6), 1, 1, 3)  # rows/cols 1..3
    expected = np.zeros((6, 6), dtype=bool)
    # foreground pixels differing from east/south/south-east: the square's right column and bottom row
    expected[1:4, 3] = True
    expected[3, 1:4] = True
    # background pixels whose east/south/south-east neighbour is foreground: row 0 and column 0 ahead of it
    expected[0, 0:4] = True
    expected[0:4, 0] = True
    assert np.array_equal(boundary_map(mask), expected)


def test_boundary_map_edges_and_corner():
    mask = np.zeros((3, 4), dtype=bool)
    mask[2, 1] = True  # on the last row: compared with its east neighbour only
    mask[1, 3] = True  # on the last column: compared with its south neighbour only
    bmap = boundary_map(mask)
    assert bmap[2, 0] and bmap[2, 1] and not bmap[2, 2]
    assert bmap[0, 3] and bmap[1, 3] and not bmap[2, 3]
    full = np.ones((3, 4), dtype=bool)
    assert not boundary_map(full).any()  # uniform mask: no boundary, corner included


def test_boundary_map_matches_reference_on_random_masks():
    rng = np.random.default_rng(1)
    for _ in range(50):
        mask = rng.random(tuple(rng.integers(1, 30, 2))) < 0.5
        assert np.array_equal(boundary_map(mask), reference_boundary_map(mask))


def test_radius_and_disk():
    assert boundary_radius(480, 854) == 8
    assert boundary_radius(7, 5) == 1  # ceil(0.008 * 8.6)
    assert np.array_equal(disk_footprint(8), reference_disk(8))
    assert np.array_equal(disk_footprint(1), np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=np.uint8))
    assert disk_footprint(8).sum() == 197  # lattice points with dx^2 + dy^2 <= 64


def disk_footprint(radius: int) -> np.ndarray:
    """The disk dilate_disk dilates by: one pixel dilated (the package has no footprint function)."""
    point = np.zeros((2 * radius + 1, 2 * radius + 1), np.uint8)
    point[radius, radius] = 1
    return dilate_disk(point, radius)


def boundary_f(pred: np.ndarray, gt: np.ndarray, radius: int) -> float:
    """Boundary measure F of one frame, as score() computes it (frame_pair_scores)."""
    return frame_pair_scores(pred, gt, radius)[1]


@pytest.mark.parametrize("radius", [0, 1, 2, 3, 5, 8, 11, 16])
def test_segment_dilation_equals_the_disk_dilation(radius):
    rng = np.random.default_rng(radius)
    for shape in [(1, 40), (40, 1), (2 * radius + 3, 3 * radius + 5), (61, 47)]:
        image = (rng.random(shape) < 0.03).astype(np.uint8)
        image[0, -1] = image[-1, 0] = 1  # pixels on the image edge: nothing dilates in from outside
        expected = cv2.dilate(image, reference_disk(radius))
        assert np.array_equal(dilate_disk(image, radius), expected)


# --- F edge cases ----------------------------------------------------------------------------------


def test_f_identical_masks_is_one():
    mask = square((40, 50), 5, 7, 12)
    assert boundary_f(mask, mask, radius_for(mask)) == 1.0


def test_f_no_boundary_anywhere_is_one():
    empty = np.zeros((9, 11), dtype=bool)
    assert boundary_f(empty, empty, radius_for(empty)) == 1.0


def test_f_only_ground_truth_boundary_is_zero():
    empty = np.zeros((20, 20), dtype=bool)
    gt = square((20, 20), 5, 5, 6)
    assert boundary_f(empty, gt, radius_for(gt)) == 0.0  # P=1, R=0
    assert boundary_f(gt, empty, radius_for(gt)) == 0.0  # P=0, R=1


def test_f_zero_when_precision_and_recall_are_zero():
    # 300x400: radius 4; two squares far apart share no boundary pixel within 4 px
    pred = square((300, 400), 10, 10, 20)
    gt = square((300, 400), 200, 300, 20)
    assert boundary_f(pred, gt, radius_for(gt)) == 0.0


def within_one_step(bmap):
    """Dilation by the radius-1 disk (a plus sign), by hand; the objects here stay off the edges."""
    return bmap | np.roll(bmap, 1, 0) | np.roll(bmap, -1, 0) | np.roll(bmap, 1, 1) | np.roll(bmap, -1, 1)


def test_f_known_partial_match_on_odd_non_square_frame():
    # 13x9 frame: radius 1. Predicted square shifted by 2 px: only boundary pixels within one step match.
    pred = square((13, 9), 2, 2, 4)
    gt = square((13, 9), 4, 2, 4)
    expected = reference_boundary_f(pred, gt)
    assert 0.0 < expected < 1.0
    assert boundary_f(pred, gt, radius_for(gt)) == expected
    pred_b, gt_b = reference_boundary_map(pred), reference_boundary_map(gt)
    precision = (pred_b & within_one_step(gt_b)).sum() / pred_b.sum()
    recall = (gt_b & within_one_step(pred_b)).sum() / gt_b.sum()
    assert boundary_f(pred, gt, radius_for(gt)) == pytest.approx(2 * precision * recall / (precision + recall))


def test_f_object_touching_the_image_edges():
    shape = (17, 23)
    pred = np.zeros(shape, dtype=bool)
    pred[9:, 15:] = True  # touches the last row and column
    gt = np.zeros(shape, dtype=bool)
    gt[10:, 14:] = True
    assert boundary_f(pred, gt, radius_for(gt)) == reference_boundary_f(pred, gt)


def test_fast_and_reference_agree_to_the_last_digit_on_random_masks():
    rng = np.random.default_rng(2017)
    for trial in range(120):
        shape = tuple(int(n) for n in rng.integers(2, 60, 2))
        if trial % 2:
            pred, gt = rng.random(shape) < rng.random(), rng.random(shape) < rng.random()
        else:
            pred = square(shape, *rng.integers(0, shape[0], 1), *rng.integers(0, shape[1], 1), int(rng.integers(1, 30)))
            gt = square(shape, *rng.integers(0, shape[0], 1), *rng.integers(0, shape[1], 1), int(rng.integers(1, 30)))
        j_values, f_values = frame_scores(pred[None], gt[None])
        assert j_values[0] == reference_jaccard(pred, gt)
        assert f_values[0] == reference_boundary_f(pred, gt)


# --- per-sequence statistics -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, edges",
    [(1, [0, 0, 0, 0, 0]), (4, [0, 1, 2, 2, 3]), (5, [0, 1, 2, 3, 4]), (10, [0, 2, 5, 7, 9]), (300, [0, 75, 150, 224, 299])],
)
def test_decay_bin_edges(n, edges):
    assert decay_bin_edges(n).tolist() == edges


def test_decay_beyond_256_frames_does_not_wrap():
    values = np.r_[np.ones(150), np.zeros(150)]  # 300 frames: first quarter 1, last quarter 0
    mean, recall, decay = sequence_statistics(values)
    assert (mean, recall, decay) == (0.5, 0.5, 1.0)
    # the official uint8 cast would have cut the last bin to [224, 43]: an empty slice
    assert decay_bin_edges(300)[-1] == 299


def test_statistics_known_values_and_reference():
    values = np.array([0.9, 0.8, 0.4, 0.6, 0.2, 0.1, 0.7])
    mean, recall, decay = sequence_statistics(values)
    edges = decay_bin_edges(7)  # round([1, 2.5, 4, 5.5, 7] + 1e-10) - 1
    assert edges.tolist() == [0, 2, 3, 5, 6]
    assert recall == 4 / 7
    assert decay == pytest.approx(np.mean(values[0:3]) - np.mean(values[5:7]))
    assert (mean, recall, decay) == reference_statistics(values.tolist())
    rng = np.random.default_rng(5)
    for n in (2, 3, 17, 100, 257, 1000):
        values = rng.random(n)
        assert sequence_statistics(values) == reference_statistics(values.tolist())


# --- the score command -----------------------------------------------------------------------------


def write_png_kinds(folder, labels):
    """The same labels stored as every PNG kind a scorer meets; palette index 0 is not black."""
    from PIL import Image

    folder.mkdir()
    cv2.imwrite(str(folder / "grey8.png"), labels.astype(np.uint8))
    cv2.imwrite(str(folder / "grey16.png"), labels.astype(np.uint16) * 300)
    Image.fromarray(labels > 0).save(folder / "grey1.png")
    palette = Image.fromarray(labels.astype(np.uint8), mode="P")
    palette.putpalette([200, 10, 10] + [0, 0, 0] * 255)  # index 0 red, every object black
    palette.save(folder / "palette.png")
    Image.fromarray(np.dstack([labels.astype(np.uint8) * 40] * 3)).save(folder / "rgb.png")
    Image.fromarray(np.dstack([labels.astype(np.uint8) * 40] + [np.full(labels.shape, 255, np.uint8)])).save(
        folder / "grey_alpha.png"
    )
    return sorted(folder.iterdir())


def test_read_foreground_equals_read_mask_for_every_png_kind(tmp_path):
    labels = np.zeros((13, 17), dtype=np.int64)
    labels[2:6, 3:9] = 1
    labels[7:11, 10:15] = 2
    labels[0, 0] = 5
    for path in write_png_kinds(tmp_path / "kinds", labels):
        foreground = read_foreground(path)
        assert foreground.dtype == bool
        assert np.array_equal(foreground, read_mask(path)), path.name
        assert np.array_equal(foreground, labels > 0), path.name


def test_read_foreground_errors_name_the_file(tmp_path):
    truncated = tmp_path / "truncated.png"
    write_mask(truncated, square((40, 40), 5, 5, 20))
    truncated.write_bytes(truncated.read_bytes()[:-30])
    for path in (truncated, tmp_path / "absent.png"):
        with pytest.raises(InputError, match=path.name):
            read_foreground(path)



def make_sequence(root, name, masks):
    for i, mask in enumerate(masks):
        write_mask(root / name / f"{i:05d}.png", mask)


@pytest.fixture()
def tiny_case(tmp_path):
    gt_root, pred_root = tmp_path / "gt", tmp_path / "pred"
    gts = [square((31, 45), 5 + i, 6, 10) for i in range(5)]
    preds = [square((31, 45), 6 + i, 7, 10) for i in range(5)]
    make_sequence(gt_root / "Annotations" / "480p", "seq", gts)
    make_sequence(pred_root, "seq", preds)
    return gt_root, pred_root, gts, preds


def test_score_cli_writes_both_tables(tiny_case, tmp_path):
    gt_root, pred_root, gts, preds = tiny_case
    out = tmp_path / "scores" / "s.csv"
    assert main(["score", "--pred", str(pred_root), "--gt", str(gt_root), "--out", str(out), "--method", "m"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns[:7]) == ["sequence", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"]
    assert table.loc[0, "n_frames"] == 3 and table.loc[0, "frames"] == "inner" and table.loc[0, "method"] == "m"
    frames = pd.read_csv(out.with_name("s.frames.csv"))
    assert frames["frame"].tolist() == [1, 2, 3]
    expected_j = [reference_jaccard(preds[i], gts[i]) for i in (1, 2, 3)]
    assert frames["J"].tolist() == expected_j  # full precision survives the CSV
    assert table.loc[0, "J_mean"] == np.mean(expected_j)


def test_score_all_frames(tiny_case):
    gt_root, pred_root, *_ = tiny_case
    per_sequence, per_frame = score_root(pred_root, gt_root, mode="all")
    assert per_frame["frame"].tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("problem", ["missing", "extra", "size"])
def test_score_cli_errors_name_the_file(tiny_case, tmp_path, capsys, problem):
    gt_root, pred_root, *_ = tiny_case
    if problem == "missing":
        (pred_root / "seq" / "00002.png").unlink()
        culprit = "00002.png"
    elif problem == "extra":
        write_mask(pred_root / "seq" / "00005.png", np.zeros((31, 45), bool))
        culprit = "00005.png"
    else:
        write_mask(pred_root / "seq" / "00003.png", np.zeros((30, 45), bool))
        culprit = "00003.png"
    out = tmp_path / "s.csv"
    assert main(["score", "--pred", str(pred_root), "--gt", str(gt_root), "--out", str(out)]) == 2
    assert culprit in capsys.readouterr().err
    assert not out.exists() and not out.with_name("s.frames.csv").exists()


def test_sparse_ground_truth_scores_annotated_frames_only(tmp_path):
    gt_dir = tmp_path / "gt" / "Annotations" / "480p" / "seq"
    for i in (0, 4, 8):
        write_mask(gt_dir / f"{i:05d}.png", square((20, 20), 3, 3, 6))
    make_sequence(tmp_path / "pred", "seq", [square((20, 20), 3, 3, 6)] * 9)
    _, per_frame = score_root(tmp_path / "pred", tmp_path / "gt", mode="all")
    assert per_frame["frame"].tolist() == [0, 4, 8]
    assert per_frame["J"].tolist() == [1.0, 1.0, 1.0]


def test_summarize_paper_layout(tmp_path):
    rows = []
    for method, j in [("joint", 0.8), ("flow-th", 0.4), ("custom", 0.5), ("appearance", 0.6)]:
        for seq, offset in [("a", 0.0), ("b", 0.1)]:
            rows.append(dict(sequence=seq, J_mean=j + offset, J_recall=1.0, J_decay=0.0, F_mean=j, F_recall=1.0,
                             F_decay=0.0, method=method, dataset="davis", frames="inner", protocol="unsupervised",
                             n_frames=3))
    scores = tmp_path / "scores.csv"
    pd.DataFrame(rows).to_csv(scores, index=False)
    out = tmp_path / "summary.csv"
    assert main(["summarize", "--scores", str(scores), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert table["method"].tolist() == ["Flow-Th", "Ours-A", "Ours-Joint", "custom"]
    joint = table.set_index("method_id").loc["joint"]
    assert joint["davis J"] == pytest.approx(0.85)
    assert joint["davis J&F"] == pytest.approx((0.85 + 0.8) / 2)
    assert joint["davis avg IoU"] == pytest.approx(0.85)
    long = pd.read_csv(tmp_path / "summary.long.csv")
    assert set(long["n_sequences"]) == {2}


# --- real data -------------------------------------------------------------------------------------


def test_official_example_predictions_on_davis2016(shared_data):
    gt_root = shared_data / "davis2016"
    predictions = shared_data / "davis2017_predictions"
    osvos, osvos_frames = score_root(predictions / "osvos", gt_root, ["blackswan"], "inner")
    assert round(osvos.loc[0, "J_mean"], 3) == 0.943
    assert round(osvos.loc[0, "F_mean"], 3) == 0.974
    assert osvos.loc[0, "n_frames"] == 48
    rvos, rvos_frames = score_root(predictions / "rvos", gt_root, ["blackswan", "dog"], "inner", threads=2)
    assert rvos["sequence"].tolist() == ["blackswan", "dog"]
    assert ((rvos[["J_mean", "F_mean"]] > 0) & (rvos[["J_mean", "F_mean"]] <= 1)).all().all()
