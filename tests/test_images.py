"""Still-image datasets (layouts images and pascal-voc): pairing, the cache, training on it, the config
role check and the workflow plan. PASCAL VOC and SBD are built in miniature with their real file formats
(palette PNGs, MATLAB structs)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse
import torch
from PIL import Image

from fusionseg.cli import main
from fusionseg.config import ROLES, check_config
from fusionseg.datasets.image_cache import ImageMaskSamples, read_image_manifest
from fusionseg.datasets.images import VOID, ImageSetOptions, open_image_set
from fusionseg.errors import ConfigError, InputError
from fusionseg.io import OUTPUT_MARKER, file_sha256, write_image
from fusionseg.train.data import IGNORE, ConcatSources, sample_batch
from fusionseg.train.streams import pixel_cross_entropy
from snakemake_support import dry_run, job_counts, run_snakemake, write_config

H, W = 12, 16
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def photo(seed: int, height: int = H, width: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)


def labels(seed: int, values: tuple[int, ...], height: int = H, width: int = W) -> np.ndarray:
    """A label map with a block of each value in `values`, at places that depend on `seed`."""
    out = np.zeros((height, width), np.uint8)
    for k, value in enumerate(values):
        top = (seed + 3 * k) % (height - 3)
        out[top : top + 3, 2 + 4 * k : 5 + 4 * k] = value
    return out


def write_grey(path: Path, values: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values, mode="L").save(path)
    return path


def write_palette(path: Path, values: np.ndarray) -> Path:
    """A palette PNG like VOC's: the pixel values are indices into a colour map."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(values, mode="P")
    image.putpalette([(i * 37) % 256 for i in range(256 * 3)])
    image.save(path)
    return path


def write_sbd_mat(path: Path, struct: str, segmentation: np.ndarray) -> Path:
    """An SBD annotation: struct GTcls (Segmentation, Boundaries, CategoriesPresent) or GTinst."""
    boundaries = np.empty((20, 1), dtype=object)
    for k in range(20):
        boundaries[k, 0] = scipy.sparse.csc_matrix(segmentation.shape, dtype=bool)
    fields = {"Segmentation": segmentation, "Boundaries": boundaries}
    present = np.unique(segmentation[segmentation > 0]).astype(np.uint8).reshape(-1, 1)
    fields["CategoriesPresent" if struct == "GTcls" else "Categories"] = present
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {struct: fields})
    return path


def folder_tree(root: Path, stems=("b1", "a2", "a10"), void: bool = True) -> Path:
    """An `images`-layout dataset: JPEG and PNG photos, grey masks 0/200 with a void (255) block."""
    for seed, stem in enumerate(stems):
        write_image(root / "images" / f"{stem}{'.jpg' if seed % 2 else '.png'}", photo(seed))
        write_grey(root / "masks" / f"{stem}.png", labels(seed, (200, 255) if void else (200,)))
    return root


def extract(*args: object) -> int:
    return main(["extract-images", *map(str, args)])


# --- layout images -------------------------------------------------------------------------------


def test_images_layout_caches_photos_and_masks_with_void(tmp_path: Path) -> None:
    root = folder_tree(tmp_path / "set")
    out = tmp_path / "cache"
    assert extract(root, "--layout", "images", "--void-label", "255", "--mask-threshold", "100", "--out", out) == 0
    table = read_image_manifest(out / "manifest.csv")
    assert list(table["stem"]) == ["a2", "a10", "b1"]  # natural order
    samples = ImageMaskSamples(out / "manifest.csv")
    for index, (seed, stem) in enumerate(((1, "a2"), (2, "a10"), (0, "b1"))):
        image, mask = samples[index]
        source = labels(seed, (200, 255))
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1, VOID}
        np.testing.assert_array_equal(mask, np.select([source == 255, source > 100], [VOID, 1], 0))
        if seed % 2 == 0:  # PNG photos are stored exactly
            np.testing.assert_array_equal(image, photo(seed))
        assert table["image_file"][index].startswith(str(root / "images" / stem))
        assert table["mask_file"][index] == str(root / "masks" / f"{stem}.png")
    assert (table["height"] == H).all() and (table["width"] == W).all()


def test_cache_manifest_checksums_and_shards(tmp_path: Path) -> None:
    root = folder_tree(tmp_path / "set", stems=[f"s{i}" for i in range(5)])
    out = tmp_path / "cache"
    assert extract(root, "--layout", "images", "--shard-size", "2", "--out", out) == 0
    table = pd.read_csv(out / "manifest.csv")
    assert list(table.groupby("shard").size()) == [2, 2, 1]
    for shard, rows in table.groupby("shard"):
        assert rows["shard_sha256"].nunique() == 1 and rows["shard_sha256"].iloc[0] == file_sha256(out / shard)
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "manifest.csv", "shards"]
    # Without --void-label, 255 is an ordinary value above the threshold: object.
    assert set(np.unique(ImageMaskSamples(out / "manifest.csv")[0][1])) == {0, 1}


def test_max_side_shrinks_photo_area_and_mask_nearest(tmp_path: Path) -> None:
    root = tmp_path / "set"
    write_image(root / "images" / "big.png", photo(0, 40, 64))
    write_grey(root / "masks" / "big.png", np.kron(labels(0, (9, 255), 10, 16), np.ones((4, 4), np.uint8)))
    out = tmp_path / "cache"
    assert extract(root, "--layout", "images", "--void-label", "255", "--max-side", "32", "--out", out) == 0
    image, mask = ImageMaskSamples(out / "manifest.csv")[0]
    assert image.shape == (20, 32, 3) and mask.shape == (20, 32)
    np.testing.assert_array_equal(mask, np.kron(np.select([labels(0, (9, 255), 10, 16) == 255, labels(0, (9, 255), 10, 16) > 0], [VOID, 1], 0), np.ones((2, 2), np.uint8)))


def test_list_file_selects_stems_in_its_order(tmp_path: Path) -> None:
    root = folder_tree(tmp_path / "set", stems=("x", "y", "z"))
    (root / "pick.txt").write_text("z\n\nx\n")
    image_set = open_image_set("images", root, ImageSetOptions(list_file="pick.txt"))
    assert [p.stem for p in image_set.pairs] == ["z", "x"] and image_set.name == "images"
    absolute = open_image_set("images", root, ImageSetOptions(list_file=str(root / "pick.txt")))
    assert absolute.pairs == image_set.pairs


# --- layout pascal-voc ---------------------------------------------------------------------------

# A miniature VOC2012 + SBD. train_aug = (SBD train | SBD val | VOC train) - VOC val.
VOC_TRAIN = ["2007_000032", "2008_000002", "2008_000003"]
VOC_VAL = ["2007_000033", "2008_000010"]
SBD_TRAIN = ["2008_000002", "2008_000020", "2008_000033", "2007_000033"]  # 2007_000033 is VOC val
SBD_VAL = ["2008_000003", "2008_000040", "2008_000010"]  # 2008_000010 is VOC val
TRAIN_AUG = ["2007_000032", "2008_000002", "2008_000003", "2008_000020", "2008_000033", "2008_000040"]
SBD_ONLY_PHOTO = "2008_000040"  # in SBD's img/ only, not in VOC's JPEGImages


def voc_tree(base: Path) -> tuple[Path, Path]:
    voc, sbd = base / "VOCdevkit" / "VOC2012", base / "SBD" / "dataset"
    lists = voc / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("".join(f"{s}\n" for s in VOC_TRAIN))
    (lists / "val.txt").write_text("".join(f"{s}\n" for s in VOC_VAL))
    (lists / "trainval.txt").write_text("".join(f"{s}\n" for s in VOC_TRAIN + VOC_VAL))
    for seed, stem in enumerate(VOC_TRAIN + VOC_VAL):
        write_palette(voc / "SegmentationClass" / f"{stem}.png", labels(seed, (15, 255, 3)))  # person, void, bird
        write_palette(voc / "SegmentationObject" / f"{stem}.png", labels(seed, (1, 255, 2)))
    sbd.mkdir(parents=True)
    (sbd / "train.txt").write_text("".join(f"{s}\n" for s in SBD_TRAIN))
    (sbd / "val.txt").write_text("".join(f"{s}\n" for s in SBD_VAL))
    for seed, stem in enumerate(SBD_TRAIN + SBD_VAL, start=50):
        write_sbd_mat(sbd / "cls" / f"{stem}.mat", "GTcls", labels(seed, (20, 7)))
        write_sbd_mat(sbd / "inst" / f"{stem}.mat", "GTinst", labels(seed, (1, 2)))
        write_image(sbd / "img" / f"{stem}.jpg", photo(seed))
    for seed, stem in enumerate(sorted(set(VOC_TRAIN + VOC_VAL + SBD_TRAIN + SBD_VAL) - {SBD_ONLY_PHOTO})):
        write_image(voc / "JPEGImages" / f"{stem}.jpg", photo(seed))
    return voc, sbd


@pytest.fixture
def voc(tmp_path: Path) -> tuple[Path, Path]:
    return voc_tree(tmp_path)


def test_train_aug_is_sbd_train_val_and_voc_train_minus_voc_val(voc: tuple[Path, Path]) -> None:
    root, sbd = voc
    image_set = open_image_set("pascal-voc", root, ImageSetOptions(sbd_root=str(sbd)))
    assert image_set.name == "train_aug"  # the default with SBD
    assert [p.stem for p in image_set.pairs] == TRAIN_AUG
    assert not {p.stem for p in image_set.pairs} & set(VOC_VAL)
    sources = {p.stem: (p.image, p.mask) for p in image_set.pairs}
    # The VOC PNG wherever VOC has one, SBD's .mat otherwise; SBD's photo only where VOC lacks it.
    assert sources["2008_000002"][1] == root / "SegmentationClass" / "2008_000002.png"
    assert sources["2008_000020"][1] == sbd / "cls" / "2008_000020.mat"
    assert sources[SBD_ONLY_PHOTO][0] == sbd / "img" / f"{SBD_ONLY_PHOTO}.jpg"
    assert sources["2008_000020"][0] == root / "JPEGImages" / "2008_000020.jpg"


@pytest.mark.parametrize("split, stems", [("train", VOC_TRAIN), ("val", VOC_VAL), ("trainval", VOC_TRAIN + VOC_VAL)])
def test_voc_splits(voc: tuple[Path, Path], split: str, stems: list[str]) -> None:
    image_set = open_image_set("pascal-voc", voc[0], ImageSetOptions(split=split))
    assert image_set.name == split and [p.stem for p in image_set.pairs] == stems


def test_voc_cache_any_class_is_object_and_255_void(voc: tuple[Path, Path], tmp_path: Path) -> None:
    root, sbd = voc
    out = tmp_path / "cache"
    assert extract(root, "--layout", "pascal-voc", "--sbd-root", sbd, "--out", out) == 0
    samples = ImageMaskSamples(out / "manifest.csv")
    stems = list(read_image_manifest(out / "manifest.csv")["stem"])
    assert stems == TRAIN_AUG and len(samples) == len(TRAIN_AUG)
    voc_mask = samples[stems.index("2007_000032")][1]  # from the VOC PNG (seed 0): classes 15 and 3, void
    np.testing.assert_array_equal(voc_mask, np.select([labels(0, (15, 255, 3)) == 255, labels(0, (15, 255, 3)) > 0], [VOID, 1], 0))
    sbd_seed = 50 + SBD_TRAIN.index("2008_000020")
    np.testing.assert_array_equal(samples[stems.index("2008_000020")][1], (labels(sbd_seed, (20, 7)) > 0).astype(np.uint8))


def test_voc_falls_back_to_object_png_and_sbd_inst(voc: tuple[Path, Path], tmp_path: Path) -> None:
    root, sbd = voc
    (root / "SegmentationClass" / "2008_000002.png").unlink()
    (sbd / "cls" / "2008_000020.mat").unlink()
    pairs = {p.stem: p for p in open_image_set("pascal-voc", root, ImageSetOptions(sbd_root=str(sbd))).pairs}
    assert pairs["2008_000002"].mask == root / "SegmentationObject" / "2008_000002.png"
    assert pairs["2008_000020"].mask == sbd / "inst" / "2008_000020.mat"


def test_train_aug_needs_sbd(voc: tuple[Path, Path]) -> None:
    with pytest.raises(InputError, match="train_aug needs the SBD"):
        open_image_set("pascal-voc", voc[0], ImageSetOptions(split="train_aug"))
    assert open_image_set("pascal-voc", voc[0]).name == "train"  # the default without SBD


# --- void reaches the loss as IGNORE -------------------------------------------------------------


def test_void_pixels_reach_the_loss_as_ignore(tmp_path: Path) -> None:
    root = folder_tree(tmp_path / "set", stems=("only",))
    assert extract(root, "--layout", "images", "--void-label", "255", "--out", tmp_path / "cache") == 0
    samples = ImageMaskSamples(tmp_path / "cache" / "manifest.csv")
    params = {"seed": 0, "batch_size": 1, "scale_range": [1.0, 1.0], "crop_size": W, "hflip": False}
    _, target = sample_batch(ConcatSources([samples]), params, iteration=0)
    void = torch.from_numpy(labels(0, (200, 255)) == 255)
    assert VOID == IGNORE and void.any()
    assert (target[0, :H][void] == IGNORE).all() and not (target[0, :H][~void] == IGNORE).any()
    logits = torch.randn(1, 2, *target.shape[1:])
    changed = logits.clone()
    changed[:, :, target[0] == IGNORE] += 100.0
    assert torch.isclose(pixel_cross_entropy(logits, target), pixel_cross_entropy(changed, target))


# --- bad input: one line naming the file, nothing written ---------------------------------------


def expect_error(capsys: pytest.CaptureFixture, out: Path, *args: object, names: object, says: str) -> None:
    assert extract(*args, "--out", out) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("fusionseg extract-images: error:")]
    assert len(lines) == 1 and str(names) in lines[0] and says in lines[0] and "Traceback" not in err, err
    assert not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_photo_without_mask(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = folder_tree(tmp_path / "set")
    write_image(root / "images" / "lonely.jpg", photo(9))
    expect_error(capsys, tmp_path / "c", root, "--layout", "images", names=root / "images" / "lonely.jpg", says="no mask")


def test_mask_without_photo(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = folder_tree(tmp_path / "set")
    write_grey(root / "masks" / "orphan.png", labels(0, (1,)))
    expect_error(capsys, tmp_path / "c", root, "--layout", "images", names=root / "masks" / "orphan.png", says="no photo")


def test_mask_size_differs_from_photo(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = folder_tree(tmp_path / "set")
    write_grey(root / "masks" / "a2.png", labels(0, (1,), H + 2, W))
    expect_error(capsys, tmp_path / "c", root, "--layout", "images", names=root / "masks" / "a2.png", says=f"mask is {W}x{H + 2}")


def test_truncated_photo(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = folder_tree(tmp_path / "set")
    path = root / "images" / "a2.jpg"
    path.write_bytes(path.read_bytes()[:200])
    expect_error(capsys, tmp_path / "c", root, "--layout", "images", names=path, says="not a readable image")


def test_unreadable_mat(voc: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, sbd = voc
    path = sbd / "cls" / "2008_000033.mat"
    path.write_bytes(path.read_bytes()[:100])
    expect_error(capsys, tmp_path / "c", root, "--layout", "pascal-voc", "--sbd-root", sbd, names=path, says="not a readable .mat")


def test_mat_without_segmentation_struct(voc: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, sbd = voc
    path = sbd / "cls" / "2008_000033.mat"
    scipy.io.savemat(path, {"other": np.zeros((H, W))})
    expect_error(capsys, tmp_path / "c", root, "--layout", "pascal-voc", "--sbd-root", sbd, names=path, says="no GTcls or GTinst")


def test_voc_class_png_with_colours_instead_of_classes(voc: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = voc[0]
    path = root / "SegmentationClass" / "2008_000002.png"
    write_grey(path, labels(0, (128,)))  # an RGB-converted or foreign label map
    expect_error(capsys, tmp_path / "c", root, "--layout", "pascal-voc", names=path, says="value 128 is neither a class")


def test_list_names_a_missing_stem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = folder_tree(tmp_path / "set")
    (root / "pick.txt").write_text("a2\nghost\n")
    expect_error(capsys, tmp_path / "c", root, "--layout", "images", "--list", "pick.txt", names=root / "pick.txt", says="'ghost'")


def test_voc_list_names_a_stem_without_photo(voc: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = voc[0]
    (root / "JPEGImages" / f"{VOC_TRAIN[1]}.jpg").unlink()
    list_path = root / "ImageSets" / "Segmentation" / "train.txt"
    expect_error(capsys, tmp_path / "c", root, "--layout", "pascal-voc", names=list_path, says="no photo")


def test_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    expect_error(capsys, tmp_path / "c", root, "--layout", "images", names=root / "images", says="empty folder")


def test_options_of_the_other_layout_are_refused(voc: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    expect_error(capsys, tmp_path / "c", voc[0], "--layout", "pascal-voc", "--void-label", "255", names="--void-label", says="not read by layout 'pascal-voc'")


def test_failed_rerun_keeps_the_previous_cache(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = folder_tree(tmp_path / "set")
    out = tmp_path / "cache"
    assert extract(root, "--layout", "images", "--out", out) == 0
    before = (out / "manifest.csv").read_text()
    write_grey(root / "masks" / "a2.png", labels(0, (1,), H + 2, W))
    assert extract(root, "--layout", "images", "--out", out) == 2
    assert (out / "manifest.csv").read_text() == before and len(ImageMaskSamples(out / "manifest.csv")) == 3


def test_corrupt_shard_is_named_when_training_reads_the_cache(tmp_path: Path) -> None:
    root = folder_tree(tmp_path / "set")
    out = tmp_path / "cache"
    assert extract(root, "--layout", "images", "--out", out) == 0
    shard = out / "shards" / "shard-00000.h5"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(InputError, match="checksum mismatch"):
        ImageMaskSamples(out / "manifest.csv")


# --- real photos: the Weizmann horses -----------------------------------------------------------


def test_weizmann_horses(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "horses"
    assert extract(shared_data / "weizmann_horse", "--layout", "images", "--max-side", "96", "--out", out) == 0
    samples = ImageMaskSamples(out / "manifest.csv")
    assert len(samples) == 328
    table = read_image_manifest(out / "manifest.csv")
    assert table["stem"].iloc[0] == "horse001" and (table[["height", "width"]].max(axis=1) == 96).all()
    foreground = [samples[i][1].mean() for i in range(0, 328, 41)]
    assert all(0.05 < f < 0.8 for f in foreground), foreground  # a horse, never the whole photo
    assert all(set(np.unique(samples[i][1])) <= {0, 1} for i in range(0, 328, 41))


# --- training on an image cache -----------------------------------------------------------------


def test_samples_survive_pickling_and_dataloader_workers(tmp_path: Path) -> None:
    root = folder_tree(tmp_path / "set")
    assert extract(root, "--layout", "images", "--void-label", "255", "--out", tmp_path / "cache") == 0
    samples = ImageMaskSamples(tmp_path / "cache" / "manifest.csv")
    first = samples[0]  # opens a handle in this process
    copy = pickle.loads(pickle.dumps(samples))
    np.testing.assert_array_equal(copy[0][1], first[1])
    loader = torch.utils.data.DataLoader(samples, batch_size=None, num_workers=1, multiprocessing_context="fork")
    read = list(loader)
    assert len(read) == 3 and np.array_equal(read[0][1].numpy(), first[1])


def test_train_appearance_on_an_image_cache(tmp_path: Path) -> None:
    root = folder_tree(tmp_path / "set")
    manifest = tmp_path / "cache" / "manifest.csv"
    assert extract(root, "--layout", "images", "--void-label", "255", "--out", manifest.parent) == 0
    params = json.dumps({"weights": "none", "iterations": 2, "batch_size": 2, "crop_size": 16, "checkpoint_every": 1})
    out = tmp_path / "appearance.pt"
    args = ["train-appearance", "--images", str(manifest), "--out", str(out), "--params", params, "--threads", "1", "--device", "cpu"]
    assert main(args) == 0
    assert torch.load(out, weights_only=True)["iteration"] == 2
    log = pd.read_csv(f"{out}.log.csv")
    assert np.isfinite(log["loss"]).all()


def test_train_appearance_needs_a_source(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train-appearance", "--out", str(tmp_path / "a.pt")]) == 2
    assert "--frames" in capsys.readouterr().err and not (tmp_path / "a.pt").exists()


# --- config and workflow ------------------------------------------------------------------------

SYNTH = {"layout": "synthetic", "synthetic": {"sequences": 2, "frames": 4, "height": 48, "width": 64}}


def image_config(root: Path, role: str = "appearance_train", **image_keys) -> dict:
    roles = {r: [{"dataset": "synth", "sequences": ["clip000"]}] for r in ("weak_video", "fusion_train")}
    roles["benchmark"] = [{"dataset": "synth", "sequences": ["clip001"]}]
    roles["appearance_train"] = []
    roles[role] = roles.get(role, []) + [{"dataset": "photos"}]
    return {
        "out_dir": "out",
        "datasets": {"synth": SYNTH, "photos": {"layout": "images", "root": str(root), **image_keys}},
        "roles": roles,
        "role_overlap": [["weak_video", "fusion_train"]],
    }


@pytest.mark.parametrize("role", [role for role in ROLES if role != "appearance_train"])
def test_image_datasets_only_train_the_appearance_stream(tmp_path: Path, role: str) -> None:
    root = folder_tree(tmp_path / "set")
    with pytest.raises(ConfigError, match=rf"roles\.{role}: dataset 'photos' has layout 'images' \(still images, no motion\)"):
        check_config(image_config(root, role))
    assert check_config(image_config(root))["datasets"]["photos"]["masks"] == "masks"


def test_config_image_keys_are_checked(tmp_path: Path, voc: tuple[Path, Path]) -> None:
    root = folder_tree(tmp_path / "set")
    with pytest.raises(ConfigError, match=r"datasets\.photos\.split: not read by layout 'images'"):
        check_config(image_config(root, split="train"))
    with pytest.raises(ConfigError, match=r"datasets\.photos\.masks: folder '.*gt' does not exist"):
        check_config(image_config(root, masks="gt"))
    config = image_config(voc[0])
    config["datasets"]["photos"] = {"layout": "pascal-voc", "root": str(voc[0]), "split": "train_aug"}
    with pytest.raises(ConfigError, match=r"datasets\.photos\.split: train_aug needs sbd_root"):
        check_config(config)


def test_workflow_plans_extract_images_then_train_appearance(tmp_path: Path, voc: tuple[Path, Path]) -> None:
    config = image_config(folder_tree(tmp_path / "set"), void_label=255, max_side=64)
    config["datasets"]["voc"] = {"layout": "pascal-voc", "root": str(voc[0]), "sbd_root": str(voc[1])}
    config["roles"]["appearance_train"] += [{"dataset": "voc"}, {"dataset": "synth", "sequences": ["clip000"]}]
    config["role_overlap"] = [["appearance_train", "weak_video"], ["appearance_train", "fusion_train"], ["weak_video", "fusion_train"]]
    write_config(tmp_path, config)
    result = run_snakemake(tmp_path, "--dry-run", "--printshellcmds", targets=("appearance",), timeout=180)
    text = result.stdout + result.stderr
    jobs = job_counts(text)
    assert jobs["extract_images"] == 2 and jobs["train_appearance"] == 1
    assert jobs["synth_frames"] == 2  # clip000 (training roles) and clip001 (benchmark); no frames for photos
    assert "extract_frames" not in jobs
    assert "--layout images --images images --masks masks --mask-threshold 0 --void-label 255 --max-side 64" in text
    assert f"--layout pascal-voc --sbd-root {voc[1]}" in text
    train = text.split("rule train_appearance:", 1)[1]
    assert "out/images/photos/manifest.csv" in train and "out/images/voc/manifest.csv" in train
    assert "--frames out/frames/synth/JPEGImages/480p/clip000 --images out/images/photos/manifest.csv --images out/images/voc/manifest.csv" in train


@pytest.mark.slow
def test_workflow_runs_extract_images_and_reruns_only_what_a_key_changes(tmp_path: Path, voc: tuple[Path, Path]) -> None:
    config = image_config(folder_tree(tmp_path / "set"), void_label=255)
    config["datasets"]["voc"] = {"layout": "pascal-voc", "root": str(voc[0]), "sbd_root": str(voc[1])}
    config["roles"]["appearance_train"].append({"dataset": "voc"})
    config["appearance"] = {"weights": "none", "iterations": 2, "batch_size": 2, "crop_size": 16, "checkpoint_every": 1}
    config["resources"] = {"threads": 1, "mem_mb": 1000, "runtime": 10}
    write_config(tmp_path, config)
    model = "out/models/appearance.pt"
    run_snakemake(tmp_path, "--cores", "1", targets=(model,))
    assert len(ImageMaskSamples(tmp_path / "out" / "images" / "voc" / "manifest.csv")) == len(TRAIN_AUG)
    assert torch.load(tmp_path / model, weights_only=True)["iteration"] == 2
    assert job_counts(dry_run(tmp_path, model)) == {}
    config["datasets"]["photos"]["void_label"] = 254
    write_config(tmp_path, config)
    planned = dry_run(tmp_path, model)
    assert job_counts(planned) == {"extract_images": 1, "train_appearance": 1}
    assert "wildcards: dataset=photos" in planned and "dataset=voc" not in planned
