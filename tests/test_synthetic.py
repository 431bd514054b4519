"""The synthetic clip generator: exact flow, masks and boxes, reproducibility, and the `synth` command."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fusionseg.cli import main
from fusionseg.datasets.layout import Sequence
from fusionseg.datasets.synthetic import SynthParams, render_clip
from fusionseg.datasets.writer import mask_box
from fusionseg.io.flo import read_flo

PARAMS = SynthParams(frames=8, height=96, width=128, max_objects=2, seed=2017)
CLIPS = [f"clip{i:03d}" for i in range(4)]


def warp_back(next_frame: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame t+1 sampled at x + flow(x) (should reproduce frame t), and where that lands in the image."""
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
    warped = cv2.remap(next_frame.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR)
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return warped, inside


def non_occluded(layers: np.ndarray, t: int, target: int, flow: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Pixels whose surface is still visible (same layer) at the flow's end, away from layer edges."""
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    tx = np.clip(np.rint(xs + flow[..., 0]), 0, width - 1).astype(int)
    ty = np.clip(np.rint(ys + flow[..., 1]), 0, height - 1).astype(int)
    same = inside & (layers[target][ty, tx] == layers[t])
    return cv2.erode(same.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


@pytest.mark.parametrize("name", CLIPS)
def test_flow_warps_next_frame_onto_current(name: str) -> None:
    clip = render_clip(name, PARAMS)
    for t in range(PARAMS.frames):
        target = t + 1 if t + 1 < PARAMS.frames else t - 1
        warped, inside = warp_back(clip.frames[target], clip.flows[t])
        valid = non_occluded(clip.layers, t, target, clip.flows[t], inside)
        assert valid.mean() > 0.5
        error = np.abs(warped - clip.frames[t])[valid].mean()
        zero_flow_error = np.abs(clip.frames[target].astype(np.float32) - clip.frames[t])[valid].mean()
        assert error < 1.5, (name, t, error)
        if np.abs(clip.flows[t]).max() > 1:
            assert zero_flow_error > 2 * error, (name, t, error, zero_flow_error)


def test_objects_move_relative_to_background() -> None:
    moving = 0
    for name in [f"clip{i:03d}" for i in range(12)]:
        clip = render_clip(name, PARAMS)
        background = np.median(clip.flows[0][clip.layers[0] == 0], axis=0)
        for k in range(1, int(clip.layers.max()) + 1):
            here = clip.layers[0] == k
            if here.any() and np.linalg.norm(np.median(clip.flows[0][here], axis=0) - background) > 0.5:
                moving += 1
    assert moving >= 8


def test_masks_match_boxes_and_objects_differ_from_background() -> None:
    for name in CLIPS:
        clip = render_clip(name, PARAMS)
        assert clip.masks.any(axis=(1, 2)).all()
        for t in range(PARAMS.frames):
            rows = clip.boxes[clip.boxes["frame"] == t]
            ids = [k for k in range(1, int(clip.layers.max()) + 1) if (clip.layers[t] == k).any()]
            assert sorted(map(tuple, rows[["x0", "y0", "x1", "y1"]].values)) == sorted(mask_box(clip.layers[t] == k) for k in ids)
            x0, y0 = rows[["x0", "y0"]].min()
            x1, y1 = rows[["x1", "y1"]].max()
            assert np.array_equal(np.argwhere(clip.masks[t]).min(axis=0), [y0, x0])
            assert np.array_equal(np.argwhere(clip.masks[t]).max(axis=0) + 1, [y1, x1])
        saturation = cv2.cvtColor(clip.frames[0], cv2.COLOR_RGB2HSV)[..., 1]
        assert saturation[clip.masks[0]].mean() > saturation[~clip.masks[0]].mean() + 40


def test_same_seed_and_name_give_identical_bytes_other_names_differ(tmp_path: Path) -> None:
    args = ["synth", "--sequence", "clip003", "--frames", "12", "--height", "96", "--width", "128", "--max-objects", "2", "--seed", "2017"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files_a) == 4 * 12 + 2  # frame, mask, native-size mask, flow per frame; boxes and table
    for relative in files_a:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes(), relative
    other = render_clip("clip004", SynthParams(12, 96, 128, 2, 2017))
    assert not np.array_equal(other.frames, render_clip("clip003", SynthParams(12, 96, 128, 2, 2017)).frames)


def test_written_clip_follows_the_layout(tmp_path: Path) -> None:
    assert main(["synth", "--out", str(tmp_path), "--sequence", "clip001", "--frames", "5", "--seed", "3"]) == 0
    seq = Sequence(tmp_path, "clip001")
    clip = render_clip("clip001", SynthParams(frames=5, seed=3))
    assert seq.read_frames().shape == (5, 96, 128, 3)
    assert all(np.array_equal(seq.read_mask(t), clip.masks[t]) for t in range(5))
    assert np.array_equal(read_flo(seq.flow_dir / "00004.flo"), clip.flows[4])
    assert len(seq.table()) == 5 and seq.table()["annotated"].all()
    assert seq.boxes().values.tolist() == clip.boxes.values.tolist()
    assert np.abs(seq.read_frames().astype(int) - clip.frames).mean() < 5  # JPEG quality 95, chroma subsampled


def test_last_frame_flow_points_backwards() -> None:
    clip = render_clip("clip002", PARAMS)
    warped, inside = warp_back(clip.frames[-2], clip.flows[-1])
    valid = non_occluded(clip.layers, PARAMS.frames - 1, PARAMS.frames - 2, clip.flows[-1], inside)
    assert np.abs(warped - clip.frames[-1])[valid].mean() < 1.5


def test_bad_parameters_are_refused(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert main(["synth", "--out", str(tmp_path / "o"), "--sequence", "c", "--frames", "1"]) == 2
    assert "--frames" in capsys.readouterr().err and not (tmp_path / "o").exists()
