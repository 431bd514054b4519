"""Configuration checks: schema errors name the key, roles are checked against declared datasets."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from PIL import Image

from fusionseg.cli import main
from fusionseg.config import ROLES, load_config, role_sequences
from fusionseg.errors import ConfigError

SHIPPED = Path(__file__).resolve().parents[1] / "config.yaml"


@pytest.fixture()
def shipped() -> dict:
    return yaml.safe_load(SHIPPED.read_text())


def write_config(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def load_error(tmp_path: Path, config: dict) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, config))
    return str(info.value)


def tiny_davis(root: Path, names: list[str]) -> Path:
    for name in names:
        for i in range(2):
            path = root / "JPEGImages" / "480p" / name / f"{i:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8)).save(path)
    return root


def test_shipped_config_validates_with_disjoint_roles() -> None:
    config = load_config(SHIPPED)
    pairs = {role: role_sequences(config, role) for role in ROLES}
    assert all(pairs[role] for role in ROLES if role not in ("validation", "segment", "flow_train"))  # optional roles
    flat = [pair for role in ROLES for pair in pairs[role]]
    assert len(flat) == len(set(flat))
    assert config["flow"]["tvl1"]["tau"] == 0.25  # schema defaults were filled in


def test_validate_config_command(capsys: pytest.CaptureFixture) -> None:
    assert main(["validate-config", str(SHIPPED)]) == 0
    assert "benchmark: 4 sequence(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda c: c["flow"].update(methd="tvl1"), "flow.methd"),
        (lambda c: c.update(rolez={}), "rolez"),
        (lambda c: c["datasets"]["synth"].update(layot="davis"), "datasets.synth.layot"),
        (lambda c: c["appearance"].update(iterations="many"), "appearance.iterations"),
        (lambda c: c["datasets"]["synth"]["synthetic"].update(frames=1), "datasets.synth.synthetic.frames"),
        (lambda c: c["flow"].update(method="raft"), "flow.method"),
    ],
)
def test_wrong_key_or_type_names_the_key(tmp_path: Path, shipped: dict, edit, key: str) -> None:
    edit(shipped)
    message = load_error(tmp_path, shipped)
    assert f"config.yaml: {key}:" in message and "\n" not in message, message


def test_wrong_key_message_names_the_typo(tmp_path: Path, shipped: dict) -> None:
    shipped["flow"]["methd"] = "tvl1"
    assert "methd" in load_error(tmp_path, shipped)


def test_role_overlap_refused_unless_listed(tmp_path: Path, shipped: dict) -> None:
    shipped["roles"]["benchmark"].append({"dataset": "synth", "sequences": ["clip000"]})
    message = load_error(tmp_path, shipped)
    assert "weak_video" in message and "benchmark" in message and "synth/clip000" in message
    shipped["role_overlap"] = [["benchmark", "weak_video"]]
    config = load_config(write_config(tmp_path, shipped))
    assert ("synth", "clip000") in role_sequences(config, "benchmark")


def test_same_sequence_under_two_dataset_names_is_an_overlap(tmp_path: Path, shipped: dict) -> None:
    root = str(tiny_davis(tmp_path / "davis", ["a", "b"]))
    shipped["datasets"]["masked"] = {"layout": "davis", "root": root}
    shipped["datasets"]["weak"] = {"layout": "davis", "root": root, "boxes_from_masks": True}
    shipped["roles"]["fusion_train"] = [{"dataset": "masked", "sequences": ["a"]}]
    shipped["roles"]["weak_video"] = [{"dataset": "weak"}]
    message = load_error(tmp_path, shipped)
    assert "weak_video and fusion_train" in message or "fusion_train and weak_video" in message


def test_undeclared_dataset_in_a_role(tmp_path: Path, shipped: dict) -> None:
    shipped["roles"]["benchmark"] = [{"dataset": "davis2016"}]
    message = load_error(tmp_path, shipped)
    assert "roles.benchmark" in message and "'davis2016' is not declared" in message


def test_missing_root(tmp_path: Path, shipped: dict) -> None:
    shipped["datasets"]["real"] = {"layout": "davis", "root": str(tmp_path / "no-such-folder")}
    message = load_error(tmp_path, shipped)
    assert "datasets.real.root" in message and "no-such-folder" in message
    shipped["datasets"]["real"] = {"layout": "segtrackv2"}
    assert "datasets.real.root: required" in load_error(tmp_path, shipped)


def test_role_naming_an_unknown_sequence(tmp_path: Path, shipped: dict) -> None:
    shipped["roles"]["benchmark"] = [{"dataset": "synth", "sequences": ["clip099"]}]
    message = load_error(tmp_path, shipped)
    assert "roles.benchmark" in message and "clip099" in message


def test_dataset_sequences_and_image_set_restrict_roles(tmp_path: Path, shipped: dict) -> None:
    root = tiny_davis(tmp_path / "davis", ["a", "b", "c"])
    (root / "ImageSets").mkdir()
    (root / "ImageSets" / "val.txt").write_text("b\nc\n")
    shipped["datasets"]["real"] = {"layout": "davis", "root": str(root), "image_set": "val.txt"}
    shipped["roles"]["benchmark"] = [{"dataset": "real"}]
    config = load_config(write_config(tmp_path, shipped))
    assert role_sequences(config, "benchmark") == [("real", "b"), ("real", "c")]
    restricted = copy.deepcopy(shipped)
    restricted["datasets"]["real"]["sequences"] = ["a"]
    assert "datasets.real.sequences: a" in load_error(tmp_path, restricted)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_tsn_and_segflow_need_annotated_video_and_segflow_flow_ground_truth(tmp_path: Path, shipped: dict) -> None:
    images = tmp_path / "photos"
    (images / "img").mkdir(parents=True)
    (images / "masks").mkdir()
    config = copy.deepcopy(shipped)
    config["datasets"]["photos"] = {"layout": "images", "root": str(images), "images": "img", "masks": "masks"}
    config["roles"]["appearance_train"] = [{"dataset": "photos"}]
    config["systems"] = ["fusionseg", "tsn"]
    assert "systems: tsn trains on the annotated video of roles.appearance_train" in load_error(tmp_path, config)
    config = copy.deepcopy(shipped)
    config["systems"] = ["segflow"]
    assert "systems: segflow needs flow with ground truth" in load_error(tmp_path, config)
    config["datasets"]["real"] = {"layout": "davis", "root": str(tiny_davis(tmp_path / "davis", ["walk"]))}
    config["roles"]["flow_train"] = [{"dataset": "real"}]
    assert "roles.flow_train: dataset 'real' has layout 'davis': flow training needs exact" in load_error(tmp_path, config)
    config["datasets"]["flows"] = {"layout": "synthetic", "synthetic": {"sequences": 2}}
    config["roles"]["flow_train"] = [{"dataset": "flows"}]
    assert role_sequences(load_config(write_config(tmp_path, config)), "flow_train") == [("flows", "clip000"), ("flows", "clip001")]
