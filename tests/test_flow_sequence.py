"""Sequence flow files (N flows for N frames), their colour coding, the CLI, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from fusionseg.cli import main
from fusionseg.flow import read_flow_h5
from fusionseg.flow.sequence import CONVENTION, frame_pairs, read_flow_attrs
from fusionseg.errors import InputError
from fusionseg.io.flo import FLO_TAG, read_flo, read_kitti_flow, write_flo, write_kitti_flow
from fusionseg.io import OUTPUT_MARKER, read_image, write_image

HEIGHT, WIDTH = 48, 64
STEP = (1.5, -1.0)  # pixels per frame: every frame moves the pattern by this


def pattern(shift_x: float, shift_y: float) -> np.ndarray:
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    xs, ys = xs - shift_x, ys - shift_y
    grey = 128 + 40 * np.sin(xs / 3.1) * np.cos(ys / 4.3) + 30 * np.sin((xs + 2 * ys) / 7.7)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def make_sequence(root: Path, frames: int = 4, name: str = "moving") -> Path:
    folder = root / "JPEGImages" / "480p" / name
    for index in range(frames):
        write_image(folder / f"{index:05d}.png", pattern(STEP[0] * index, STEP[1] * index))
    return folder


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_frame_pairs_convention() -> None:
    assert frame_pairs(4) == [(0, 1), (1, 2), (2, 3), (3, 2)]
    assert frame_pairs(2) == [(0, 1), (1, 0)]
    with pytest.raises(ValueError):
        frame_pairs(1)


@pytest.mark.parametrize("method", ["tvl1", "dis"])
def test_compute_flow_writes_n_flows_with_last_one_backward(tmp_path: Path, method: str) -> None:
    frames = make_sequence(tmp_path)
    out = tmp_path / "flow" / "moving.h5"
    code = main(["compute-flow", "--frames", str(frames), "--out", str(out), "--method", method,
                 "--device", "cpu", "--batch-size", "3", "--threads", "1"])
    assert code == 0
    flow = read_flow_h5(out)
    assert flow.shape == (4, HEIGHT, WIDTH, 2) and flow.dtype == np.float32
    inner = (slice(8, -8), slice(8, -8))
    for index in range(3):
        assert np.abs(np.median(flow[index][inner], axis=(0, 1)) - STEP).max() < 0.2
    assert np.abs(np.median(flow[3][inner], axis=(0, 1)) + STEP).max() < 0.2  # last frame: i -> i-1
    attrs = read_flow_attrs(out)
    assert attrs["method"] == method and attrs["convention"] == CONVENTION
    assert isinstance(attrs["params"], dict) and attrs["params"]
    with h5py.File(out) as h5:
        assert h5["flow"].chunks == (1, HEIGHT, WIDTH, 2)


def test_params_reach_the_file_and_unknown_keys_are_named(tmp_path: Path, capsys) -> None:
    frames = make_sequence(tmp_path, frames=2)
    out = tmp_path / "a.h5"
    assert main(["compute-flow", "--frames", str(frames), "--out", str(out), "--method", "tvl1",
                 "--device", "cpu", "--params", json.dumps({"warps": 2, "iterations": 10})]) == 0
    assert read_flow_attrs(out)["params"]["warps"] == 2
    bad = tmp_path / "b.h5"
    assert main(["compute-flow", "--frames", str(frames), "--out", str(bad), "--params", '{"warp": 2}']) == 2
    assert "warp" in capsys.readouterr().err
    assert not bad.exists()


def test_encode_flow_per_frame_and_fixed(tmp_path: Path) -> None:
    frames = make_sequence(tmp_path, frames=3)
    flow_path = tmp_path / "moving.h5"
    assert main(["compute-flow", "--frames", str(frames), "--out", str(flow_path), "--method", "dis"]) == 0
    per_frame, fixed = tmp_path / "rgb", tmp_path / "rgb_fixed"
    assert main(["encode-flow", "--flow", str(flow_path), "--out", str(per_frame)]) == 0
    assert leftovers(per_frame) == [OUTPUT_MARKER, "00000.png", "00001.png", "00002.png"]
    image = read_image(per_frame / "00000.png")
    assert image.shape == (HEIGHT, WIDTH, 3)
    assert main(["encode-flow", "--flow", str(flow_path), "--out", str(fixed), "--normalization", "fixed",
                 "--max-flow", "20"]) == 0
    # A fixed maximum far above the motion keeps colours pale; per-frame normalisation saturates them.
    assert read_image(fixed / "00000.png").min() > image.min()


def test_encode_flow_fixed_needs_max_flow(tmp_path: Path, capsys) -> None:
    frames = make_sequence(tmp_path, frames=2)
    flow_path = tmp_path / "moving.h5"
    assert main(["compute-flow", "--frames", str(frames), "--out", str(flow_path), "--method", "dis"]) == 0
    assert main(["encode-flow", "--flow", str(flow_path), "--out", str(tmp_path / "rgb"), "--normalization", "fixed"]) == 2
    assert "max_flow" in capsys.readouterr().err
    assert not (tmp_path / "rgb").exists()


def test_frames_of_different_size(tmp_path: Path, capsys) -> None:
    frames = make_sequence(tmp_path, frames=3)
    write_image(frames / "00002.png", pattern(0, 0)[:40])
    out = tmp_path / "flow"
    assert main(["compute-flow", "--frames", str(frames), "--out", str(out / "moving.h5"), "--method", "dis"]) == 2
    assert "00002.png" in capsys.readouterr().err
    assert leftovers(out) == []


def test_one_frame_sequence(tmp_path: Path, capsys) -> None:
    frames = make_sequence(tmp_path, frames=1)
    out = tmp_path / "flow"
    assert main(["compute-flow", "--frames", str(frames), "--out", str(out / "moving.h5")]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert leftovers(out) == []


def test_corrupt_frame(tmp_path: Path, capsys) -> None:
    frames = make_sequence(tmp_path, frames=3)
    (frames / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "flow"
    assert main(["compute-flow", "--frames", str(frames), "--out", str(out / "moving.h5")]) == 2
    assert "00001.png" in capsys.readouterr().err
    assert leftovers(out) == []


def test_read_flow_h5_errors_name_the_file(tmp_path: Path) -> None:
    from fusionseg.errors import InputError

    with pytest.raises(InputError, match="missing.h5"):
        read_flow_h5(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="junk.h5"):
        read_flow_h5(junk)


def test_pair_commands_write_flo_and_rgb(tmp_path: Path) -> None:
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    write_image(first, pattern(0, 0))
    write_image(second, pattern(*STEP))
    flo, rgb = tmp_path / "ab.flo", tmp_path / "ab.png"
    assert main(["flow", str(first), str(second), "--out", str(flo), "--method", "tvl1", "--device", "cpu"]) == 0
    flow = read_flo(flo)
    assert np.abs(np.median(flow[8:-8, 8:-8], axis=(0, 1)) - STEP).max() < 0.2
    assert main(["flow-to-rgb", str(flo), "--out", str(rgb), "--max-flow", "4"]) == 0
    assert read_image(rgb).shape == (HEIGHT, WIDTH, 3)
    assert main(["flow", str(first), str(tmp_path / "nope.png"), "--out", str(tmp_path / "x.flo")]) == 2
    assert not (tmp_path / "x.flo").exists()


def test_kitti_png_round_trip_and_channel_order(tmp_path: Path) -> None:
    flow = np.zeros((3, 4, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.5, -1.25
    valid = np.ones((3, 4), bool)
    valid[0, 0] = False
    path = tmp_path / "k.png"
    write_kitti_flow(path, flow, valid)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # BGR: u is in the last channel
    assert raw[1, 1, 2] == 2**15 + 160 and raw[1, 1, 1] == 2**15 - 80 and raw[1, 1, 0] == 1
    read, read_valid = read_kitti_flow(path)
    np.testing.assert_array_equal(read_valid, valid)
    np.testing.assert_allclose(read[valid], flow[valid])


def test_flo_round_trip(tmp_path: Path) -> None:
    flow = np.random.default_rng(0).normal(size=(5, 7, 2)).astype(np.float32)
    write_flo(tmp_path / "f.flo", flow)
    np.testing.assert_array_equal(read_flo(tmp_path / "f.flo"), flow)


def test_flo_files_are_opencvs(tmp_path: Path) -> None:
    """The .flo codec writes and reads the files OpenCV's writeOpticalFlow and readOpticalFlow do
    (it uses them, with the checks they lack: fusionseg.io.flo)."""
    import cv2

    flow = np.random.default_rng(1).normal(size=(6, 9, 2)).astype(np.float32)
    write_flo(tmp_path / "ours.flo", flow)
    assert cv2.writeOpticalFlow(str(tmp_path / "opencv.flo"), flow)
    assert (tmp_path / "ours.flo").read_bytes() == (tmp_path / "opencv.flo").read_bytes()
    np.testing.assert_array_equal(cv2.readOpticalFlow(str(tmp_path / "ours.flo")), flow)
    np.testing.assert_array_equal(read_flo(tmp_path / "opencv.flo"), flow)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("tag.flo", b"PIEX" + bytes(8), "not a Middlebury .flo file (bad header tag)"),
        ("negative.flo", np.array([FLO_TAG], "<f4").tobytes() + np.array([-5, 3], "<i4").tobytes() + bytes(40),
         "truncated or malformed .flo (52 bytes, expected -108 for -5x3)"),
        ("huge.flo", np.array([FLO_TAG], "<f4").tobytes() + np.array([2**30, 2**30], "<i4").tobytes(), "truncated or malformed .flo"),
        ("trailing.flo", np.array([FLO_TAG], "<f4").tobytes() + np.array([1, 1], "<i4").tobytes() + bytes(9),
         "truncated or malformed .flo (21 bytes, expected 20 for 1x1)"),
        ("short.flo", np.array([FLO_TAG], "<f4").tobytes() + np.array([2, 2], "<i4").tobytes() + bytes(8), "truncated or malformed .flo"),
        ("nan.flo", np.array([FLO_TAG], "<f4").tobytes() + np.array([1, 1], "<i4").tobytes() + np.array([np.nan, 0], "<f4").tobytes(),
         "holds NaN or infinite flow values"),
    ],
)
def test_bad_flo_files_are_one_line_errors(tmp_path: Path, name: str, content: bytes, problem: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError) as excinfo:
        read_flo(tmp_path / name)
    assert str(excinfo.value).startswith(f"{tmp_path / name}: {problem}")
    assert "\n" not in str(excinfo.value)


@pytest.mark.shared_data
def test_reads_real_kitti_ground_truth(shared_data: Path) -> None:
    flow, valid = read_kitti_flow(shared_data / "flow_gt" / "kitti2015" / "kitti_occ_000010_10.png")
    assert flow.shape == (375, 1242, 2) and 0.1 < valid.mean() < 0.9
    # Driving forward: horizontal motion dominates the vertical one.
    assert np.abs(flow[valid, 0]).mean() > np.abs(flow[valid, 1]).mean()
