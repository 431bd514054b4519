"""The shipped real-data configs: davis-cpu.yaml plans the whole DAG on ../shared/data, and
davis-gpu.yaml (paths of a cluster) plans the whole DAG on a stand-in tree with its folder layout
(DAVIS, ImageNet-VID, YouTube-Objects, SegTrack-v2, PASCAL VOC 2012 and SBD)."""

from __future__ import annotations

from pathlib import Path

import yaml

from fusionseg.config import ROLES, check_config, role_sequences
from snakemake_support import REPO, dry_run, job_counts, write_config

EVERY_STEP = {
    "compute_flow", "encode_flow", "train_appearance", "infer_appearance", "bootstrap", "train_motion",
    "infer_motion", "train_fusion", "infer_joint", "threshold_masks", "flow_th", "flow_sal", "saliency", "score",
    "summarize", "write_roles", "render_report", "all",
}  # fmt: skip


def load(name: str) -> dict:
    return yaml.safe_load((REPO / "configs" / name).read_text())


def with_roots(config: dict, roots: dict[str, Path]) -> dict:
    """The config with each dataset root replaced where `roots` names one (an absolute path)."""
    for name, entry in config["datasets"].items():
        if name in roots:
            entry["root"] = str(roots[name])
    return config


def test_davis_cpu_plans_the_whole_dag_with_disjoint_roles(tmp_path, shared_data) -> None:
    config = load("davis-cpu.yaml")
    config = with_roots(config, {n: (REPO / e["root"]).resolve() for n, e in config["datasets"].items() if "root" in e})
    checked = check_config(config)
    benchmark = set(role_sequences(checked, "benchmark"))
    assert {seq for _, seq in benchmark} == {"blackswan", "car-shadow", "dog", "kite-surf", "libby", "motocross-jump", "bmx"}
    for role in (r for r in ROLES if r != "benchmark"):
        assert not {seq for _, seq in role_sequences(checked, role)} & {seq for _, seq in benchmark}, role
    write_config(tmp_path, config)
    jobs = job_counts(dry_run(tmp_path))
    assert EVERY_STEP | {"train_tsn", "infer_tsn", "infer_joint_tsn", "train_segflow", "infer_segflow"} <= set(jobs)
    # 30 DAVIS train sequences (15 appearance, 10 weak, 5 fusion = validation) and 7 benchmark sequences.
    assert jobs["extract_frames"] == 37 and jobs["synth_frames"] == 16
    # 10 methods (5 FusionSeg, TSN, its pixel-stream ablation, Ours-Joint+TSN, SegFlow, SegFlow-online)
    # on 2 benchmark datasets, and on the validation split; TSN with and without the instance stream.
    assert jobs["score"] == 22 and jobs["score_validation"] == 11 and jobs["train_tsn"] == 2


def make_cluster_tree(base: Path, config: dict) -> dict[str, Path]:
    """Empty stand-ins for the cluster's dataset folders, with the layout each reader lists."""
    davis = base / "DAVIS"
    val = ["blackswan", "bmx-trees", "breakdance"]
    image_set = davis / "ImageSets" / "2016" / "val.txt"
    image_set.parent.mkdir(parents=True, exist_ok=True)
    image_set.write_text("".join(f"/JPEGImages/480p/{n}/00000.jpg /Annotations/480p/{n}/00000.png\n" for n in val))
    for name in val + config["datasets"]["davis2017_heldout"]["sequences"]:
        (davis / "JPEGImages" / "480p" / name).mkdir(parents=True)
    (base / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation").mkdir(parents=True)
    (base / "SBD" / "dataset").mkdir(parents=True)
    for name in ("ILSVRC2015_train_00000000", "ILSVRC2015_train_00001000"):
        (base / "ILSVRC2015" / "Data" / "VID" / "train" / "a" / name).mkdir(parents=True)
        (base / "ILSVRC2015" / "Annotations" / "VID" / "train" / "a" / name).mkdir(parents=True)
    for name in ("aeroplane0001", "cat0002"):
        (base / "youtube-objects" / "JPEGImages" / name).mkdir(parents=True)
    for name in ("bmx", "frog"):
        (base / "SegTrackv2" / "JPEGImages" / name).mkdir(parents=True)
    return {
        "voc_train_aug": base / "VOCdevkit" / "VOC2012",
        "davis2017_heldout": davis,
        "davis2016_val": davis,
        "imagenet_vid": base / "ILSVRC2015",
        "youtube_objects": base / "youtube-objects",
        "segtrackv2": base / "SegTrackv2",
    }


def test_davis_gpu_plans_the_whole_dag_on_gpus(tmp_path) -> None:
    config = load("davis-gpu.yaml")
    assert config["appearance"]["backbone"] == config["motion"]["backbone"] == "resnet101"
    assert config["appearance"]["weights"].endswith(".pth")
    assert config["datasets"]["voc_train_aug"]["split"] == "train_aug"
    config = with_roots(config, make_cluster_tree(tmp_path / "data", config))
    config["datasets"]["voc_train_aug"]["sbd_root"] = str(tmp_path / "data" / "SBD" / "dataset")
    write_config(tmp_path, config)
    text = dry_run(tmp_path)
    jobs = job_counts(text)
    assert EVERY_STEP | {"extract_images"} <= set(jobs)
    assert jobs["extract_images"] == 1  # the appearance stream trains on PASCAL VOC train_aug, as in the paper
    assert jobs["score"] == 18  # 6 methods (Saliency and FusionSeg's five) x 3 benchmark datasets
    assert jobs["compute_flow"] == 2 + 15 + 3 + 2 + 2  # weak, fusion and benchmark sequences
    train_job = text.split("rule train_appearance:", 1)[1].split("\n\n", 1)[0]
    assert "gpu=1" in train_job and "slurm_partition=gpu" in train_job
    assert "images/voc_train_aug/manifest.csv" in train_job
