"""The official protocol: masks and scores at the ground truth's native size, whatever size the
networks saw; semi-supervised frames; per-object (DAVIS-2017) scoring on multi-object clips."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from fusionseg.cli import main
from fusionseg.datasets.layout import Sequence
from fusionseg.infer.masks import object_labels, resize_scores, write_masks
from fusionseg.infer.probs import write_probs
from fusionseg.io import read_label_image, write_image, write_labels, write_mask
from fusionseg.metrics.scoring import score_root, scored_frames

FULL = (96, 160)  # (height, width) of the source


def _disk(shape, centre, radius):
    ys, xs = np.ogrid[: shape[0], : shape[1]]
    return (ys - centre[0]) ** 2 + (xs - centre[1]) ** 2 <= radius**2


@pytest.fixture()
def davis_source(tmp_path):
    """A DAVIS-layout source at full size: a disk moving right over a textured background."""
    root = tmp_path / "source"
    rng = np.random.default_rng(0)
    for i in range(5):
        mask = _disk(FULL, (48, 50 + 8 * i), 22)
        image = rng.integers(0, 90, (*FULL, 3)).astype(np.uint8)
        image[mask] = (230, 70, 40)
        write_image(root / "JPEGImages" / "480p" / "seq" / f"{i:05d}.jpg", image)
        write_mask(root / "Annotations" / "480p" / "seq" / f"{i:05d}.png", mask)
    return root


def _extract_half_size(source, out):
    assert main(["extract-frames", str(source), "--layout", "davis", "--sequence", "seq", "--out", str(out),
                 "--max-side", "80"]) == 0
    return Sequence(out, "seq")


def test_extract_keeps_native_ground_truth_and_source_size(davis_source, tmp_path):
    sequence = _extract_half_size(davis_source, tmp_path / "frames")
    assert sequence.read_mask(0).shape == (48, 80)
    assert sequence.source_size() == (160, 96)
    native = read_label_image(sequence.source_masks_dir / "00000.png")
    assert native.shape == FULL and set(np.unique(native)) == {0, 255}


def test_half_size_prediction_is_scored_against_full_size_masks(davis_source, tmp_path):
    """Probabilities at half size are upsampled (bilinear) to 160x96, thresholded and scored there."""
    sequence = _extract_half_size(davis_source, tmp_path / "frames")
    half = np.stack([sequence.read_mask(i) for i in range(5)]).astype(np.float32)
    soft = np.stack([cv2.GaussianBlur(m, (5, 5), 1.0) for m in half])  # a smooth, good prediction
    write_probs(tmp_path / "seq.h5", [soft], 5, (48, 80), "appearance", "0" * 64)
    masks = tmp_path / "pred" / "seq"
    assert main(["masks", "--probs", str(tmp_path / "seq.h5"), "--out", str(masks),
                 "--frames", str(sequence.frames_dir)]) == 0
    assert read_label_image(masks / "00002.png").shape == FULL
    out = tmp_path / "scores.csv"
    assert main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "frames"), "--gt-resolution",
                 "source", "--frames", "inner", "--out", str(out)]) == 0
    row = pd.read_csv(out).iloc[0]
    assert row["net_size"] == "80x48" and row["scored_size"] == "160x96"
    assert row["J_mean"] > 0.93
    # Enlarging the thresholded half-size mask instead gives staircase outlines: no better, usually worse.
    staircase = cv2.resize(half[2], (160, 96), interpolation=cv2.INTER_NEAREST) > 0.5
    truth = _disk(FULL, (48, 66), 22)
    smooth = read_label_image(masks / "00002.png") > 0
    assert (smooth ^ truth).sum() <= (staircase ^ truth).sum()


def test_a_half_size_mask_is_refused_by_the_native_scorer(davis_source, tmp_path, capsys):
    sequence = _extract_half_size(davis_source, tmp_path / "frames")
    for i in range(5):
        write_mask(tmp_path / "pred" / "seq" / f"{i:05d}.png", sequence.read_mask(i))
    out = tmp_path / "scores.csv"
    assert main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "frames"), "--gt-resolution",
                 "source", "--out", str(out)]) == 2
    assert "80x48" in capsys.readouterr().err and not out.exists()


def test_resize_scores_is_bilinear_with_half_pixel_centres():
    scores = np.array([[0.0, 1.0]], dtype=np.float32)
    assert np.allclose(resize_scores(scores, (4, 1)), [[0.0, 0.25, 0.75, 1.0]])


def test_object_labels_take_the_likeliest_of_background_and_objects():
    probs = np.array([[[0.7, 0.1, 0.2]], [[0.2, 0.8, 0.3]]], dtype=np.float32)  # (K=2, 1, 3)
    assert object_labels(probs, [3, 5]).tolist() == [[3, 5, 0]]


def test_semi_supervised_protocol_leaves_out_the_given_frame():
    assert scored_frames([0, 1, 2, 3], "all", "semi-supervised") == [1, 2, 3]
    assert scored_frames([0, 1, 2, 3], "inner", "semi-supervised") == [1, 2]
    assert scored_frames([0, 1, 2, 3], "all") == [0, 1, 2, 3]


def test_per_object_scores_on_a_multi_object_synthetic_clip(tmp_path):
    """Each object is scored on its own: a prediction that swaps one object's id scores 0 for it."""
    clip = tmp_path / "synth"
    args = ["synth", "--out", str(clip), "--sequence", "clip000", "--frames", "6", "--height", "64", "--width", "96",
            "--max-objects", "3", "--seed", "5", "--no-merge-objects"]
    assert main(args) == 0
    truth = Sequence(clip, "clip000")
    first = read_label_image(truth.masks_dir / "00000.png")
    ids = [int(i) for i in np.unique(first) if i]
    assert len(ids) >= 2, "seed 5 must give a multi-object clip"
    swapped_id = ids[0]
    for i in range(6):
        labels = read_label_image(truth.masks_dir / f"{i:05d}.png").copy()
        labels[labels == swapped_id] = 250  # this object's pixels get a wrong id
        write_labels(tmp_path / "pred" / "clip000" / f"{i:05d}.png", labels)
    per_object, per_frame = score_root(tmp_path / "pred", clip, mode="all", protocol="semi-supervised",
                                       per_object=True, gt_resolution="source")
    scores = per_object.set_index("object")
    assert sorted(scores.index) == ids
    assert scores.loc[swapped_id, "J_mean"] == 0.0
    assert all(scores.loc[i, "J_mean"] == 1.0 for i in ids[1:])
    assert per_frame["frame"].min() == 1  # the given first frame is not scored


def test_per_object_scoring_refuses_merged_masks(tmp_path, capsys):
    for i in range(3):
        write_mask(tmp_path / "gt" / "Annotations" / "480p" / "s" / f"{i:05d}.png", _disk((20, 20), (10, 10), 4))
        write_mask(tmp_path / "pred" / "s" / f"{i:05d}.png", _disk((20, 20), (10, 10), 4))
    assert main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--per-object",
                 "--out", str(tmp_path / "s.csv")]) == 2
    assert "merge_objects" in capsys.readouterr().err


def test_per_object_probability_files_become_id_masks(tmp_path):
    probs = np.zeros((2, 2, 8, 8), np.float32)
    probs[:, 0, :4] = 0.9
    probs[:, 1, 4:, 4:] = 0.8
    write_probs(tmp_path / "p.h5", [probs], 2, (8, 8), "tsn", "0" * 64, object_ids=[1, 2])
    assert write_masks(tmp_path / "p.h5", tmp_path / "m", size=(16, 16)) == 2
    labels = read_label_image(tmp_path / "m" / "00001.png")
    assert labels.shape == (16, 16) and set(np.unique(labels)) == {0, 1, 2}
