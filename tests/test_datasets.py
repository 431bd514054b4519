"""Readers, extract-frames and list_sequences on tiny trees built in tmp_path, and on the real data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fusionseg.cli import main
from fusionseg.datasets import list_sequences
from fusionseg.datasets.layout import Sequence
from fusionseg.errors import ConfigError, InputError

W, H = 40, 30


def frame(i: int, width: int = W, height: int = H) -> np.ndarray:
    rng = np.random.default_rng(i)
    return cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (5, 5), 0)


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def square_mask(i: int, value: int = 255) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[5 + i : 15 + i, 10:20] = value
    return mask


def write_grey(path: Path, values: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values).save(path)
    return path


def write_palette(path: Path, ids: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(ids, mode="P")
    image.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0] + [0] * 759)
    image.save(path)
    return path


def davis_tree(root: Path, name: str = "seq", count: int = 4, masks: bool = True) -> Path:
    for i in range(count):
        write_rgb(root / "JPEGImages" / "480p" / name / f"{i:05d}.jpg", frame(i))
        if masks:
            write_grey(root / "Annotations" / "480p" / name / f"{i:05d}.png", square_mask(i))
    return root


def extract(*args: str) -> int:
    return main(["extract-frames", *map(str, args)])


def no_output_left(out: Path) -> bool:
    return not out.exists() or not any(p.is_file() for p in out.rglob("*"))


# ---- readers -----------------------------------------------------------------------------------


def test_davis_reader_writes_layout_with_binary_masks(tmp_path: Path) -> None:
    davis_tree(tmp_path / "davis")
    assert extract(tmp_path / "davis", "--layout", "davis", "--sequence", "seq", "--out", tmp_path / "out") == 0
    seq = Sequence(tmp_path / "out", "seq")
    assert seq.read_frames().shape == (4, H, W, 3)
    assert np.array_equal(seq.read_mask(2), square_mask(2) > 0)
    assert set(np.unique(np.asarray(Image.open(seq.mask_paths()[0])))) == {0, 255}
    table = seq.table()
    assert list(table["index"]) == [0, 1, 2, 3] and table["annotated"].all()
    assert table["source"][1].endswith("00001.jpg") and seq.boxes().empty


def test_davis2017_palette_ids_merge_or_stay_and_box_per_object(tmp_path: Path) -> None:
    for i in range(3):
        write_rgb(tmp_path / "d" / "JPEGImages" / "480p" / "two" / f"{i:05d}.jpg", frame(i))
        ids = np.zeros((H, W), np.uint8)
        ids[2:10, 2:12] = 1
        ids[15:25, 25:35] = 2
        write_palette(tmp_path / "d" / "Annotations" / "480p" / "two" / f"{i:05d}.png", ids)
    extract(tmp_path / "d", "--layout", "davis", "--sequence", "two", "--out", tmp_path / "merged", "--boxes-from-masks")
    extract(tmp_path / "d", "--layout", "davis", "--sequence", "two", "--out", tmp_path / "ids", "--no-merge-objects")
    merged = np.asarray(Image.open(tmp_path / "merged" / "Annotations" / "480p" / "two" / "00000.png"))
    kept = np.asarray(Image.open(tmp_path / "ids" / "Annotations" / "480p" / "two" / "00000.png"))
    assert set(np.unique(merged)) == {0, 255} and set(np.unique(kept)) == {0, 1, 2}
    boxes = Sequence(tmp_path / "merged", "two").boxes()
    # the PNG is merged, the boxes still follow the objects
    assert boxes.values.tolist()[:2] == [[0, 2, 2, 12, 10], [0, 25, 15, 35, 25]] and len(boxes) == 6


def test_boxes_from_masks_one_box_per_id_without_merging(tmp_path: Path) -> None:
    for i in range(2):
        write_rgb(tmp_path / "d" / "JPEGImages" / "480p" / "two" / f"{i:05d}.jpg", frame(i))
        ids = np.zeros((H, W), np.uint8)
        if i == 0:
            ids[2:10, 2:12] = 1
            ids[15:25, 25:35] = 2
        write_palette(tmp_path / "d" / "Annotations" / "480p" / "two" / f"{i:05d}.png", ids)
    extract(tmp_path / "d", "--layout", "davis", "--sequence", "two", "--out", tmp_path / "o", "--no-merge-objects", "--boxes-from-masks")
    boxes = Sequence(tmp_path / "o", "two").boxes().values.tolist()
    assert boxes == [[0, 2, 2, 12, 10], [0, 25, 15, 35, 25]]  # the empty mask of frame 1 has no box


def test_segtrack_resampled_masks_thresholded_and_natural_order(tmp_path: Path) -> None:
    names = ["bmx_9.png", "bmx_10.png", "bmx_100.png"]
    for i, name in enumerate(names):
        write_rgb(tmp_path / "st" / "JPEGImages" / "bmx" / name, frame(i))
        soft = np.repeat(square_mask(i, 200)[..., None], 3, axis=2)
        soft[0, 0] = 100  # anti-aliasing below the threshold
        write_rgb(tmp_path / "st" / "GroundTruth_resampled" / "bmx" / name, soft)
    extract(tmp_path / "st", "--layout", "segtrackv2", "--sequence", "bmx", "--out", tmp_path / "o", "--mask-threshold", "127")
    seq = Sequence(tmp_path / "o", "bmx")
    assert [Path(s).name for s in seq.table()["source"]] == names
    assert np.array_equal(seq.read_mask(0), square_mask(0) > 0)


def test_segtrack_object_subfolders_merge_into_one_foreground(tmp_path: Path) -> None:
    for i, name in enumerate(["a01.bmp", "a02.bmp"]):
        write_rgb(tmp_path / "st" / "JPEGImages" / "pair" / name, frame(i))
        first, second = np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8)
        first[0:5, 0:5] = 255
        second[20:30, 30:40] = 255
        write_grey(tmp_path / "st" / "GroundTruth" / "pair" / "1" / name.replace("bmp", "png"), first)
        write_grey(tmp_path / "st" / "GroundTruth" / "pair" / "2" / name.replace("bmp", "png"), second)
    extract(tmp_path / "st", "--layout", "segtrackv2", "--sequence", "pair", "--out", tmp_path / "o", "--boxes-from-masks", "--no-merge-objects")
    mask = np.asarray(Image.open(tmp_path / "o" / "Annotations" / "480p" / "pair" / "00001.png"))
    assert mask[2, 2] == 1 and mask[25, 35] == 2 and mask[15, 15] == 0
    assert len(Sequence(tmp_path / "o", "pair").boxes()) == 4


def test_youtube_objects_sparse_masks_keep_their_frame_index(tmp_path: Path) -> None:
    for i in range(5):
        write_rgb(tmp_path / "yto" / "JPEGImages" / "car1" / f"frame{i + 1}.jpg", frame(i))
    write_grey(tmp_path / "yto" / "Annotations" / "car1" / "frame4.png", square_mask(3))
    extract(tmp_path / "yto", "--layout", "youtube-objects", "--sequence", "car1", "--out", tmp_path / "o")
    seq = Sequence(tmp_path / "o", "car1")
    assert list(seq.mask_paths()) == [3]
    assert list(seq.table()["annotated"]) == [False, False, False, True, False]
    assert np.array_equal(seq.read_mask(3), square_mask(3) > 0)


def voc_xml(boxes: list[tuple[int, int, int, int]]) -> str:
    objects = "".join(
        f"<object><trackid>{k}</trackid><name>n0</name><bndbox><xmax>{x1}</xmax><xmin>{x0}</xmin>"
        f"<ymax>{y1}</ymax><ymin>{y0}</ymin></bndbox></object>"
        for k, (x0, y0, x1, y1) in enumerate(boxes)
    )
    return f"<annotation><size><width>{W}</width><height>{H}</height></size>{objects}</annotation>"


def imagenet_vid_tree(root: Path) -> Path:
    per_frame = [[(2, 3, 11, 12), (20, 5, 39, 29)], [], [(4, 4, 9, 9)]]
    for i, boxes in enumerate(per_frame):
        write_rgb(root / "Data" / "VID" / "train" / "a" / "vid0" / f"{i:06d}.JPEG", frame(i))
        path = root / "Annotations" / "VID" / "train" / "a" / "vid0" / f"{i:06d}.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(voc_xml(boxes))
    return root


def test_imagenet_vid_boxes_scaled_with_max_side(tmp_path: Path) -> None:
    imagenet_vid_tree(tmp_path / "vid")
    extract(tmp_path / "vid", "--layout", "imagenet-vid", "--sequence", "vid0", "--out", tmp_path / "o")
    seq = Sequence(tmp_path / "o", "vid0")
    assert seq.boxes().values.tolist() == [[0, 2, 3, 12, 13], [0, 20, 5, 40, 30], [2, 4, 4, 10, 10]]
    assert seq.mask_paths() == {} and seq.masks_dir.is_dir()
    extract(tmp_path / "vid", "--layout", "imagenet-vid", "--sequence", "vid0", "--out", tmp_path / "half", "--max-side", "20")
    half = Sequence(tmp_path / "half", "vid0")
    assert half.read_frames().shape == (3, 15, 20, 3)
    assert half.boxes().values.tolist() == [[0, 1, 1, 6, 7], [0, 10, 2, 20, 15], [2, 2, 2, 5, 5]]


def tiny_video(path: Path, count: int = 6) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (48, 32))
    for i in range(count):
        writer.write(frame(i, 48, 32))
    writer.release()
    return path


def test_video_reader_and_max_frames(tmp_path: Path) -> None:
    video = tiny_video(tmp_path / "clip.mp4")
    assert extract(video, "--layout", "video", "--out", tmp_path / "o") == 0
    seq = Sequence(tmp_path / "o", "clip")
    assert seq.read_frames().shape == (6, 32, 48, 3)
    assert list(seq.table()["source"]) == [f"video:{i}" for i in range(6)]
    extract(tmp_path, "--layout", "video", "--sequence", "clip", "--out", tmp_path / "short", "--max-frames", "3")
    assert len(Sequence(tmp_path / "short", "clip").frame_paths()) == 3


def test_boxes_from_masks_without_masks_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    imagenet_vid_tree(tmp_path / "vid")
    expect_error(capsys, tmp_path / "o", tmp_path / "vid", "--layout", "imagenet-vid", "--sequence", "vid0", "--boxes-from-masks",
                 names="vid0", says="no masks")


def test_max_side_resizes_frames_and_masks_nearest(tmp_path: Path) -> None:
    davis_tree(tmp_path / "davis")
    extract(tmp_path / "davis", "--layout", "davis", "--sequence", "seq", "--out", tmp_path / "o", "--max-side", "20")
    seq = Sequence(tmp_path / "o", "seq")
    assert seq.read_frames().shape[1:3] == (15, 20)
    values = np.unique(np.asarray(Image.open(seq.mask_paths()[0])))
    assert set(values) == {0, 255}


def test_rerun_replaces_a_sequence_completely(tmp_path: Path) -> None:
    davis_tree(tmp_path / "davis")
    extract(tmp_path / "davis", "--layout", "davis", "--sequence", "seq", "--out", tmp_path / "o")
    extract(tmp_path / "davis", "--layout", "davis", "--sequence", "seq", "--out", tmp_path / "o", "--max-frames", "2")
    seq = Sequence(tmp_path / "o", "seq")
    assert len(seq.frame_paths()) == 2 and len(seq.mask_paths()) == 2
    assert not [p for p in (tmp_path / "o").iterdir() if p.name.startswith(".")]


# ---- list_sequences ----------------------------------------------------------------------------


def test_list_sequences_layouts(tmp_path: Path) -> None:
    davis_tree(tmp_path / "davis", "b")
    davis_tree(tmp_path / "davis", "a")
    (tmp_path / "davis" / "ImageSets" / "2017").mkdir(parents=True)
    (tmp_path / "davis" / "ImageSets" / "2017" / "val.txt").write_text("b\n")
    (tmp_path / "davis" / "ImageSets" / "2016.txt").write_text("/JPEGImages/480p/a/00000.jpg /Annotations/480p/a/00000.png\n")
    assert list_sequences("d", {"layout": "davis", "root": str(tmp_path / "davis")}) == ["a", "b"]
    assert list_sequences("d", {"layout": "davis", "root": str(tmp_path / "davis"), "image_set": "2017/val.txt"}) == ["b"]
    assert list_sequences("d", {"layout": "davis", "root": str(tmp_path / "davis"), "image_set": "2016.txt"}) == ["a"]
    assert list_sequences("s", {"layout": "synthetic", "synthetic": {"sequences": 3}}) == ["clip000", "clip001", "clip002"]
    assert list_sequences("v", {"layout": "imagenet-vid", "root": str(imagenet_vid_tree(tmp_path / "vid"))}) == ["vid0"]
    tiny_video(tmp_path / "videos" / "x.mp4")
    (tmp_path / "videos" / "notes.txt").write_text("not a video")
    assert list_sequences("v", {"layout": "video", "root": str(tmp_path / "videos")}) == ["x"]
    assert list_sequences("v", {"layout": "video", "root": str(tmp_path / "videos" / "x.mp4")}) == ["x"]


def test_list_sequences_errors(tmp_path: Path) -> None:
    davis_tree(tmp_path / "davis", "a")
    with pytest.raises(ConfigError, match="datasets.d.sequences: zzz"):
        list_sequences("d", {"layout": "davis", "root": str(tmp_path / "davis"), "sequences": ["a", "zzz"]})
    with pytest.raises(InputError, match="does not exist"):
        list_sequences("d", {"layout": "davis", "root": str(tmp_path / "nothing")})
    (tmp_path / "empty" / "JPEGImages").mkdir(parents=True)
    with pytest.raises(InputError, match="no sequences"):
        list_sequences("e", {"layout": "youtube-objects", "root": str(tmp_path / "empty")})
    with pytest.raises(InputError, match="image set file not found"):
        list_sequences("d", {"layout": "davis", "root": str(tmp_path / "davis"), "image_set": "missing.txt"})


# ---- bad input: a clear error naming the file, and nothing written ------------------------------


def expect_error(capsys: pytest.CaptureFixture, out: Path, *args: object, names: str, says: str) -> None:
    assert extract(*args, "--out", out) == 2
    message = capsys.readouterr().err
    assert names in message and says in message, message
    assert no_output_left(out)


def test_truncated_jpeg_frame(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    davis_tree(tmp_path / "davis")
    bad = tmp_path / "davis" / "JPEGImages" / "480p" / "seq" / "00002.jpg"
    bad.write_bytes(bad.read_bytes()[:-200])
    expect_error(capsys, tmp_path / "o", tmp_path / "davis", "--layout", "davis", "--sequence", "seq", names=str(bad), says="truncated")


def test_truncated_png_mask(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    davis_tree(tmp_path / "davis")
    bad = tmp_path / "davis" / "Annotations" / "480p" / "seq" / "00003.png"
    bad.write_bytes(bad.read_bytes()[:40])
    expect_error(capsys, tmp_path / "o", tmp_path / "davis", "--layout", "davis", "--sequence", "seq", names=str(bad), says="readable")


def test_mask_size_differs_from_frame(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    davis_tree(tmp_path / "davis")
    bad = write_grey(tmp_path / "davis" / "Annotations" / "480p" / "seq" / "00001.png", np.zeros((10, 10), np.uint8))
    expect_error(capsys, tmp_path / "o", tmp_path / "davis", "--layout", "davis", "--sequence", "seq", names=str(bad), says="10x10")


def test_davis_mask_gap(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    davis_tree(tmp_path / "davis")
    gap = tmp_path / "davis" / "Annotations" / "480p" / "seq" / "00001.png"
    gap.unlink()
    expect_error(capsys, tmp_path / "o", tmp_path / "davis", "--layout", "davis", "--sequence", "seq", names=str(gap), says="missing")


def test_segtrack_missing_mask(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for i in range(3):
        write_rgb(tmp_path / "st" / "JPEGImages" / "s" / f"f{i}.png", frame(i))
        if i != 1:
            write_grey(tmp_path / "st" / "GroundTruth" / "s" / f"f{i}.png", square_mask(i))
    folder = tmp_path / "st" / "GroundTruth" / "s"
    expect_error(capsys, tmp_path / "o", tmp_path / "st", "--layout", "segtrackv2", "--sequence", "s", names=str(folder), says="f1.png")


def test_one_frame_sequence(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    davis_tree(tmp_path / "davis", count=1)
    expect_error(capsys, tmp_path / "o", tmp_path / "davis", "--layout", "davis", "--sequence", "seq", names="seq", says="at least 2 frames")


def test_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "yto" / "JPEGImages" / "e"
    empty.mkdir(parents=True)
    expect_error(capsys, tmp_path / "o", tmp_path / "yto", "--layout", "youtube-objects", "--sequence", "e", names=str(empty), says="empty")


def test_root_pointing_at_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nowhere"
    expect_error(capsys, tmp_path / "o", missing, "--layout", "davis", "--sequence", "s", names=str(missing), says="does not exist")


def test_truncated_and_garbage_video(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    video = tiny_video(tmp_path / "v.mp4", count=8)
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    expect_error(capsys, tmp_path / "o", truncated, "--layout", "video", names=str(truncated), says="video")
    garbage = tmp_path / "junk.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    expect_error(capsys, tmp_path / "o", garbage, "--layout", "video", names=str(garbage), says="video")


def test_one_frame_video(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    video = tiny_video(tmp_path / "single.mp4", count=1)
    expect_error(capsys, tmp_path / "o", video, "--layout", "video", names="single", says="at least 2 frames")


def test_malformed_voc_xml(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    imagenet_vid_tree(tmp_path / "vid")
    bad = tmp_path / "vid" / "Annotations" / "VID" / "train" / "a" / "vid0" / "000001.xml"
    bad.write_text("<annotation><object><bndbox><xmin>3</xmin></bndbox></object>")
    expect_error(capsys, tmp_path / "o", tmp_path / "vid", "--layout", "imagenet-vid", "--sequence", "vid0", names=str(bad), says="PASCAL-VOC")


def test_failure_keeps_the_previous_complete_sequence(tmp_path: Path) -> None:
    davis_tree(tmp_path / "davis")
    extract(tmp_path / "davis", "--layout", "davis", "--sequence", "seq", "--out", tmp_path / "o")
    before = sorted(p.relative_to(tmp_path / "o") for p in (tmp_path / "o").rglob("*"))
    (tmp_path / "davis" / "JPEGImages" / "480p" / "seq" / "00003.jpg").write_bytes(b"garbage")
    assert extract(tmp_path / "davis", "--layout", "davis", "--sequence", "seq", "--out", tmp_path / "o") == 2
    assert sorted(p.relative_to(tmp_path / "o") for p in (tmp_path / "o").rglob("*")) == before


# ---- real data (skipped without ../shared/data) -------------------------------------------------


@pytest.mark.shared_data
def test_real_davis2016_blackswan(shared_data: Path, tmp_path: Path) -> None:
    extract(shared_data / "davis2016", "--layout", "davis", "--sequence", "blackswan", "--out", tmp_path, "--max-frames", "6")
    seq = Sequence(tmp_path, "blackswan")
    assert seq.read_frames().shape == (6, 480, 854, 3)
    assert seq.read_mask(5).shape == (480, 854) and seq.read_mask(5).any()
    davis = {"layout": "davis", "root": str(shared_data / "davis2016"), "image_set": "480p/dev.txt"}
    assert len(list_sequences("davis", davis)) == 6
    assert len(list((shared_data / "davis2016" / "JPEGImages" / "480p" / "blackswan").glob("*.jpg"))) == 50


@pytest.mark.shared_data
def test_real_segtrack_bmx(shared_data: Path, tmp_path: Path) -> None:
    extract(shared_data / "segtrackv2", "--layout", "segtrackv2", "--sequence", "bmx", "--out", tmp_path, "--mask-threshold", "127")
    seq = Sequence(tmp_path, "bmx")
    table = seq.table()
    assert len(table) == 36 and set(zip(table["width"], table["height"])) == {(640, 360)}
    assert Path(table["source"][0]).name == "bmx_06668.png"
    mask = np.asarray(Image.open(seq.mask_paths()[10]))
    assert set(np.unique(mask)) <= {0, 255} and (mask > 0).mean() > 0.005


@pytest.mark.shared_data
def test_real_video_bikes(shared_data: Path, tmp_path: Path) -> None:
    assert extract(shared_data / "videos" / "bikes.mp4", "--layout", "video", "--out", tmp_path) == 0
    seq = Sequence(tmp_path, "bikes")
    table = seq.table()
    assert len(seq.frame_paths()) == 250 and len(table) == 250
    assert (table["width"] == 640).all() and (table["height"] == 272).all()
    assert seq.masks_dir.is_dir() and pd.read_csv(seq.boxes_path).empty


def test_frames_of_different_sizes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    davis_tree(tmp_path / "davis", masks=False)
    odd = write_rgb(tmp_path / "davis" / "JPEGImages" / "480p" / "seq" / "00002.jpg", frame(2, 20, 20))
    expect_error(capsys, tmp_path / "o", tmp_path / "davis", "--layout", "davis", "--sequence", "seq", names=str(odd), says="20x20")
