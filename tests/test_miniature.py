"""The miniature of the cluster datasets (fusionseg make-miniature): every reader of configs/davis-gpu.yaml
reads it, its ResNet-101 file loads strictly, and the cluster config runs on it end to end (slow)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from fusionseg.cli import main
from fusionseg.config import check_config
from fusionseg.datasets import list_sequences
from fusionseg.datasets.images import ImageSetOptions, open_image_set, read_pair
from fusionseg.datasets.miniature import CHECKPOINT, DAVIS, SBD, SEGTRACK, VID, VOC, YOUTUBE_OBJECTS
from fusionseg.datasets.readers import open_source
from fusionseg.errors import ConfigError, InputError
from fusionseg.models.backbones import load_pretrained
from fusionseg.models.resnet import ResNet
from fusionseg.models.stream import StreamModel
from snakemake_support import DAVIS_GPU, MINIATURE_OVERLAY

# What the overlay may set: where the data are, how long and how large the streams train, the devices.
OVERLAY_KEYS = {"root", "sbd_root", "weights", "iterations", "crop_size", "device"}


def merged(*configs: dict) -> dict:
    """Snakemake's merge of several --configfile: later files override, nested sections deep-merged."""
    from snakemake.utils import update_config

    result: dict = {}
    for config in configs:
        update_config(result, copy.deepcopy(config))
    return result


def leaf_keys(section: dict) -> set[str]:
    return {key for key, value in section.items() for key in (leaf_keys(value) if isinstance(value, dict) else {key})}


def test_overlay_changes_only_data_paths_training_length_crops_and_devices() -> None:
    overlay = yaml.safe_load(MINIATURE_OVERLAY.read_text())
    assert leaf_keys(overlay) <= OVERLAY_KEYS
    cluster = yaml.safe_load(DAVIS_GPU.read_text())
    assert set(overlay["datasets"]) == set(cluster["datasets"])  # every dataset root is repointed


def test_cluster_config_checks_on_the_miniature(miniature, monkeypatch) -> None:
    monkeypatch.chdir(miniature.parent)  # the overlay's roots are relative: miniature/...
    config = check_config(merged(yaml.safe_load(DAVIS_GPU.read_text()), yaml.safe_load(MINIATURE_OVERLAY.read_text())))
    assert config["appearance"]["backbone"] == "resnet101" and config["appearance"]["batch_size"] == 10
    assert config["bootstrap"]["box_iou"] == 0.75  # the paper's pruning, unchanged
    held_out = config["datasets"]["davis2017_heldout"]["sequences"]
    assert list_sequences("davis2017_heldout", config["datasets"]["davis2017_heldout"]) == held_out


def test_davis_2017_palette_masks_keep_object_ids_and_the_2016_image_set(miniature) -> None:
    root = miniature / DAVIS
    assert list_sequences("v", {"layout": "davis", "root": str(root), "image_set": "2016/val.txt"}) == ["bmx-trees"]
    raw = open_source("davis", root, "bmx-trees")
    assert sorted(raw.masks) == [0, 1, 2, 3]
    assert set(np.unique(raw.masks[0].read())) == {0, 1, 2}  # two objects, palette indices


def test_imagenet_vid_boxes_from_xml_and_the_split(miniature) -> None:
    root = miniature / VID
    train = list_sequences("vid", {"layout": "imagenet-vid", "root": str(root), "split": "train"})
    assert train == ["ILSVRC2015_train_00000000", "ILSVRC2015_train_00001000"]
    everything = list_sequences("vid", {"layout": "imagenet-vid", "root": str(root)})
    assert set(everything) == {*train, "ILSVRC2015_val_00000000", "ILSVRC2015_test_00000000"}
    with pytest.raises(ConfigError, match="split: 'test'"):
        list_sequences("vid", {"layout": "imagenet-vid", "root": str(root), "split": "test"})
    raw = open_source("imagenet-vid", root, train[0])
    assert list(raw.boxes["frame"].value_counts().sort_index()) == [2, 2, 2, 2]
    frame = next(raw.frames())[1]
    assert (raw.boxes[["x1"]].to_numpy() <= frame.shape[1]).all() and (raw.boxes[["y1"]].to_numpy() <= frame.shape[0]).all()
    with pytest.raises(InputError, match=r"000000\.xml: annotation file not found"):
        open_source("imagenet-vid", root, "ILSVRC2015_test_00000000")  # test snippets have no boxes


def test_youtube_objects_sparse_masks_and_segtrack_object_folders(miniature) -> None:
    yto = open_source("youtube-objects", miniature / YOUTUBE_OBJECTS, "aeroplane0001")
    assert sorted(yto.masks) == [1, 3]
    assert set(np.unique(yto.masks[1].read())) == {0, 1}
    segtrack = open_source("segtrackv2", miniature / SEGTRACK, "bmx")
    assert len(segtrack.masks) == 4 and len(segtrack.masks[0].paths) == 2
    assert set(np.unique(segtrack.masks[0].read())) == {0, 1, 2}


def test_pascal_voc_train_aug_takes_voc_and_sbd_masks(miniature) -> None:
    options = ImageSetOptions(split="train_aug", sbd_root=str(miniature / SBD))
    image_set = open_image_set("pascal-voc", miniature / VOC, options)
    pairs = {pair.stem: pair for pair in image_set.pairs}
    assert list(pairs) == ["2007_000032", "2007_000039", "2008_000002", "2008_000008"]  # 2007_000033 is VOC val
    assert pairs["2007_000039"].mask.parent.name == "SegmentationClass"
    assert pairs["2008_000002"].mask.suffix == ".mat"
    _, voc_mask = read_pair(pairs["2007_000039"])
    _, sbd_mask = read_pair(pairs["2008_000008"])
    assert set(np.unique(voc_mask)) == {0, 1, 255}  # void along VOC outlines
    assert set(np.unique(sbd_mask)) == {0, 1}


def test_resnet101_file_has_torchvision_keys_and_loads_strictly(miniature) -> None:
    path = miniature / CHECKPOINT
    state = torch.load(path, map_location="cpu", weights_only=True)
    expected = {k for k in ResNet("resnet101", num_classes=1000).state_dict() if not k.endswith("num_batches_tracked")}
    assert set(state) == expected  # like torchvision's ImageNet files: classifier, no num_batches_tracked
    backbone = load_pretrained("resnet101", path, keep_classifier=True)
    assert torch.equal(backbone.fc.weight, state["fc.weight"])
    model = StreamModel("resnet101", str(path)).eval()
    with torch.no_grad():
        features = model.backbone.features(torch.randn(1, 3, 96, 128))
    assert 0.1 < features.std().item() < 5  # near a pretrained backbone's scale, which trains at DeepLab's rate


def test_make_miniature_refuses_a_folder_in_use(tmp_path, capsys) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.txt").write_text("keep me")
    assert main(["make-miniature", str(tmp_path / "data")]) == 2
    assert "already exists and is not an empty folder" in capsys.readouterr().err
    assert (tmp_path / "data" / "mine.txt").read_text() == "keep me"


@pytest.mark.slow
def test_cluster_config_runs_end_to_end_on_the_miniature(miniature_run) -> None:
    out = miniature_run / "output" / "davis-gpu"
    summary = pd.read_csv(out / "results" / "summary.csv")
    assert list(summary["method_id"]) == ["flow-th", "flow-sal", "saliency", "appearance", "motion", "joint"]
    for dataset in ("davis2016_val", "youtube_objects", "segtrackv2"):
        assert summary[f"{dataset} J"].notna().all()
    assert (out / "results" / "report.html").stat().st_size > 0
    ran = {path.name for path in (out / "benchmarks").iterdir()}
    assert ran >= {"extract_images", "extract_frames", "encode_flow", "train_appearance", "infer_appearance", "bootstrap",
                   "train_motion", "infer_motion", "train_fusion", "infer_joint", "threshold_masks", "flow_th", "flow_sal", "saliency",
                   "score", "summarize", "write_roles", "render_report"}  # fmt: skip
    assert len(list((out / "flow").glob("*/*.h5"))) == 15 + 1 + 2 + 1 + 1  # compute_flow: no benchmark file
    funnel = pd.read_csv(out / "pseudo" / "funnel.csv").set_index("dataset")
    assert funnel.loc["total", "kept"] > 0  # the paper's pruning keeps pseudo labels for the motion stream
