"""Model bundles: export-models round trip, float16 storage, and one clear line for every bad bundle;
a config that names trained models plans no training.

Bundles here hold untrained EfficientNet-Lite0 streams (the smallest backbone) of a tiny synthetic run.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from snakemake_support import dry_run, job_counts, write_config

from fusionseg.bundles import export as bundle_export
from fusionseg.bundles import manifest as bundle_manifest
from fusionseg.bundles.export import export_bundle
from fusionseg.bundles.importing import check_models_config
from fusionseg.bundles.manifest import MANIFEST_CHECKSUM, MANIFEST_NAME
from fusionseg.bundles.verify import extract_models, read_bundle, read_manifest
from fusionseg.cli import main
from fusionseg.config import EFFECTIVE_CONFIG, check_config
from fusionseg.errors import ConfigError, InputError
from fusionseg.io import file_sha256
from fusionseg.models.checkpoint import load_model, save_checkpoint
from fusionseg.models.fusion import FusionModel
from fusionseg.models.stream import StreamModel
from fusionseg.tsn.infer import load_tsn
from fusionseg.tsn.model import TSNModel, tsn_arch
from fusionseg.tsn.train import tsn_params

# A run that trained on synthetic clip000 (every training role) and was scored on clip001.
TRAINING_CONFIG = {
    "out_dir": "run",
    "datasets": {
        "synth": {"layout": "synthetic", "synthetic": {"sequences": 3, "frames": 4, "height": 48, "width": 64, "max_objects": 1, "seed": 3}}
    },
    "roles": {
        "appearance_train": [{"dataset": "synth", "sequences": ["clip000"]}],
        "weak_video": [{"dataset": "synth", "sequences": ["clip000"]}],
        "fusion_train": [{"dataset": "synth", "sequences": ["clip000"]}],
        "benchmark": [{"dataset": "synth", "sequences": ["clip001"]}],
    },
    "role_overlap": [["appearance_train", "weak_video"], ["appearance_train", "fusion_train"], ["weak_video", "fusion_train"]],
    "appearance": {"weights": "none"},
    "motion": {"weights": "none"},
    "flow": {"method": "tvl1", "device": "cpu", "tvl1": {"iterations": 10, "warps": 2, "max_levels": 3}},
}
SUMMARY = pd.DataFrame({"method": ["Ours-Joint"], "method_id": ["joint"], "synth J": [0.25]})


# The smallest TSN (untrained): what a run with systems [fusionseg, tsn] leaves in models/tsn.pt.
TINY_TSN = {"weights": "none", "key_channels": 8, "value_channels": 16, "decoder_channels": [16, 8, 8], "kernel_dim": 8, "device": "cpu"}


def write_training_run(folder: Path, tsn: bool = False) -> Path:
    """A finished (untrained) run in `folder`: config, three checkpoints (and TSN's, with its system),
    summary and, last, the run's effective config (as the workflow writes it when a run finishes);
    returns the config."""
    torch.manual_seed(0)
    config_path = folder / "train.yaml"
    config = {**TRAINING_CONFIG, **({"systems": ["fusionseg", "tsn"]} if tsn else {})}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    models = folder / "run" / "models"
    if tsn:
        params = tsn_params(json.dumps(TINY_TSN))
        save_checkpoint(models / "tsn.pt", TSNModel(tsn_arch(params)).eval(), params, 1)
    for stream in ("appearance", "motion"):
        save_checkpoint(models / f"{stream}.pt", StreamModel("efficientnet_lite0", "none", stream).eval(), {"iterations": 1}, 1)
    fusion = FusionModel()
    with torch.no_grad():
        fusion.motion.bias.copy_(torch.tensor([0.1, -0.2]))
    save_checkpoint(models / "fusion.pt", fusion, {"iterations": 1}, 1)
    (folder / "run" / "results").mkdir(parents=True)
    SUMMARY.to_csv(folder / "run" / "results" / "summary.csv", index=False)
    (folder / "run" / EFFECTIVE_CONFIG).write_text(yaml.safe_dump(check_config(config), sort_keys=False))
    return config_path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The folder of a finished training run (the working directory export-models runs in)."""
    return write_training_run(tmp_path_factory.mktemp("trained")).parent


@pytest.fixture(scope="module")
def bundle(trained) -> Path:
    path = trained / "bundle.zip"
    export_bundle(trained / "train.yaml", path, models_dir=trained / "run" / "models", summary=trained / "run" / "results" / "summary.csv")
    return path


@pytest.fixture(scope="module")
def trained_tsn(tmp_path_factory) -> Path:
    """A finished run whose systems were fusionseg and tsn."""
    return write_training_run(tmp_path_factory.mktemp("trained-tsn"), tsn=True).parent


@pytest.fixture(scope="module")
def tsn_bundle(trained_tsn) -> Path:
    path = trained_tsn / "tsn-bundle.zip"
    export_bundle(trained_tsn / "train.yaml", path, models_dir=trained_tsn / "run" / "models", scores=False)
    return path


def rewrite_bundle(source: Path, out: Path, members: dict[str, bytes] | None = None, edit=None, keep_checksums: bool = False) -> Path:
    """A copy of a bundle with members replaced and the manifest edited; checksums (the manifest's, and
    manifest.sha256) follow the new members and manifest, as a deliberate forger's would, unless
    `keep_checksums` (then the manifest still describes the old members)."""
    with zipfile.ZipFile(source) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(contents.pop(MANIFEST_NAME))
    contents.pop(MANIFEST_CHECKSUM)
    contents.update(members or {})
    if not keep_checksums:
        for name, data in contents.items():
            manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    if edit:
        edit(manifest)
    manifest_bytes = json.dumps(manifest).encode()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(MANIFEST_NAME, manifest_bytes)
        archive.writestr(MANIFEST_CHECKSUM, hashlib.sha256(manifest_bytes).hexdigest())
        for name, data in contents.items():
            archive.writestr(name, data)
    return out


def member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def one_error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_manifest_records_checksums_training_scores_and_terms(bundle, trained) -> None:
    manifest = read_manifest(bundle)
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        for name, entry in manifest["files"].items():
            assert hashlib.sha256(archive.read(name)).hexdigest() == entry["sha256"]
    assert names == {"manifest.json", "manifest.sha256", "config.yaml", "appearance.pt", "motion.pt", "fusion.pt"}
    assert member(bundle, "manifest.sha256").decode().strip() == hashlib.sha256(member(bundle, "manifest.json")).hexdigest()
    assert member(bundle, "config.yaml") == (trained / "train.yaml").read_bytes()
    assert manifest["training"]["roles"]["fusion_train"] == ["synth/clip000"]
    assert manifest["scores"]["summary"] == [{"method": "Ours-Joint", "method_id": "joint", "synth J": 0.25}]
    assert manifest["max_side"] == 64  # the synthetic clips' longer side
    assert manifest["models"]["motion"]["input"]["flow"]["method"] == "tvl1"
    assert manifest["models"]["motion"]["input"]["flow"]["params"]["iterations"] == 10
    assert manifest["models"]["motion"]["input"]["flow_rgb"] == {"normalization": "per_frame", "max_flow": None}
    assert manifest["models"]["appearance"]["arch"] == {"kind": "stream", "stream": "appearance", "backbone": "efficientnet_lite0"}
    assert "synthetic" in manifest["licence"]
    assert manifest["git_commit"] is None or len(manifest["git_commit"]) == 40


def test_davis_training_data_puts_its_licence_in_the_manifest() -> None:
    config = {
        "datasets": {"davis": {"layout": "davis"}, "synth": {"layout": "synthetic"}},
        "roles": {"appearance_train": [{"dataset": "davis"}], "weak_video": [{"dataset": "synth"}], "fusion_train": []},
        "appearance": {"weights": "imagenet"},
        "motion": {"weights": "none"},
    }
    note = bundle_export.licence_note(config)
    assert "CC BY-NC" in note and "non-commercial" in note and "ImageNet" in note


def test_working_size_of_native_size_video_comes_from_the_run_frame_tables(tmp_path) -> None:
    from fusionseg.config import check_config

    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "walk.mp4").write_bytes(b"")  # listed by name only
    config = check_config({
        "out_dir": "run",
        "datasets": {"clips": {"layout": "video", "root": str(tmp_path / "videos")}, **TRAINING_CONFIG["datasets"]},
        "roles": {"appearance_train": [{"dataset": "clips"}, {"dataset": "synth", "sequences": ["clip000"]}]},
    })  # fmt: skip
    assert bundle_export.training_max_side(config, tmp_path / "run") is None  # not extracted: unknown
    table = tmp_path / "run" / "frames" / "clips" / "Tables" / "walk.csv"
    table.parent.mkdir(parents=True)
    pd.DataFrame({"index": [0, 1], "width": [100, 100], "height": [60, 60]}).to_csv(table, index=False)
    assert bundle_export.training_max_side(config, tmp_path / "run") == 100


def test_weights_are_stored_as_float16_and_load_as_float32(bundle, trained, tmp_path) -> None:
    stored = torch.load(io.BytesIO(member(bundle, "motion.pt")), weights_only=True)["model"]
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    paths = extract_models(read_bundle(bundle), tmp_path)
    for name, path in paths.items():
        assert file_sha256(path) == read_manifest(bundle)["files"][f"{name}.pt"]["sha256"]
    original = load_model(trained / "run" / "models" / "motion.pt", "stream", "motion")
    restored = load_model(paths["motion"], "stream", "motion")
    assert all(p.dtype == torch.float32 for p in restored.parameters())
    images = torch.rand(1, 3, 48, 64) * 255
    with torch.no_grad():
        assert torch.allclose(original(images).softmax(1), restored(images).softmax(1), atol=2e-3)
    fusion = load_model(paths["fusion"], "fusion")
    assert fusion.motion.bias.tolist() == pytest.approx([0.1, -0.2], abs=1e-3)


def test_export_models_command_round_trip(trained, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(trained)
    out = tmp_path / "cli.zip"
    assert main(["export-models", "--config", "train.yaml", "--out", str(out), "--no-scores", "--licence", "test terms"]) == 0
    verified = read_bundle(out)
    assert verified.sha256 == file_sha256(out)
    assert verified.manifest["scores"] is None and verified.manifest["licence"] == "test terms"
    assert verified.flow.method == "tvl1" and verified.max_side == 64


def test_export_without_the_run_summary_says_what_to_do(trained, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(trained)
    line = one_error_line(capsys, ["export-models", "--config", "train.yaml", "--summary", "missing.csv", "--out", str(tmp_path / "b.zip")])
    assert "missing.csv" in line and "--no-scores" in line
    assert not (tmp_path / "b.zip").exists()


def test_truncated_bundle_is_one_line_naming_it(bundle, tmp_path, capsys) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    line = one_error_line(capsys, ["segment", str(tmp_path), "--models", str(broken), "--out", str(tmp_path / "out")])
    assert str(broken) in line and "bundle" in line


def test_altered_member_fails_its_checksum(bundle, tmp_path) -> None:
    altered = rewrite_bundle(bundle, tmp_path / "altered.zip", {"fusion.pt": member(bundle, "fusion.pt")[:-10] + b"0" * 10}, keep_checksums=True)
    with pytest.raises(InputError, match=r"altered\.zip: fusion\.pt does not match its SHA-256"):
        read_bundle(altered)


def test_checkpoint_in_the_wrong_place_is_named(bundle, tmp_path) -> None:
    swapped = rewrite_bundle(bundle, tmp_path / "swapped.zip", {"motion.pt": member(bundle, "appearance.pt")})
    with pytest.raises(InputError, match=r"swapped\.zip: motion\.pt: holds a checkpoint of the appearance stream .*motion model's place"):
        read_bundle(swapped)


def test_manifest_architecture_must_match_the_checkpoint(bundle, tmp_path) -> None:
    def claim_resnet(manifest: dict) -> None:
        manifest["models"]["appearance"]["arch"]["backbone"] = "resnet50"

    mismatched = rewrite_bundle(bundle, tmp_path / "mismatched.zip", edit=claim_resnet)
    with pytest.raises(InputError, match=r"appearance\.pt: holds a checkpoint of the appearance stream \(efficientnet_lite0\), but manifest\.json lists .*resnet50"):
        read_bundle(mismatched)


def test_weights_that_do_not_fit_the_architecture_are_named(bundle, tmp_path) -> None:
    payload = torch.load(io.BytesIO(member(bundle, "appearance.pt")), weights_only=True)
    payload["model"].pop(next(iter(payload["model"])))
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    damaged = rewrite_bundle(bundle, tmp_path / "damaged.zip", {"appearance.pt": buffer.getvalue()})
    with pytest.raises(InputError, match=r"damaged\.zip: appearance\.pt: weights do not fit"):
        read_bundle(damaged)


def test_wrong_input_convention_is_refused(bundle, tmp_path) -> None:
    def rgb_motion(manifest: dict) -> None:
        manifest["models"]["motion"]["input"] = {"kind": "rgb"}

    with pytest.raises(InputError, match=r"the motion model's input is 'rgb'"):
        read_bundle(rewrite_bundle(bundle, tmp_path / "rgb.zip", edit=rgb_motion))

    def unknown_flow(manifest: dict) -> None:
        manifest["models"]["motion"]["input"]["flow"]["method"] = "raft"

    with pytest.raises(InputError, match=r"raft\.zip: the motion stream's input convention cannot be reproduced: .*'raft'"):
        read_bundle(rewrite_bundle(bundle, tmp_path / "raft.zip", edit=unknown_flow))


def bundle_config(bundle: Path, **changes) -> dict:
    """A workflow config segmenting one synthetic clip with the bundle's models."""
    config = {
        "out_dir": "out",
        "datasets": {"synth": {"layout": "synthetic", "synthetic": {"sequences": 2, "frames": 4, "height": 48, "width": 64, "max_objects": 1, "seed": 5}}},
        "roles": {"segment": [{"dataset": "synth", "sequences": ["clip000"]}], "benchmark": [{"dataset": "synth", "sequences": ["clip001"]}]},
        "models": {"bundle": str(bundle)},
        "flow": {"method": "tvl1", "device": "cpu", "tvl1": {"iterations": 10, "warps": 2, "max_levels": 3}},
        "resources": {"gpu": 0, "threads": 1, "mem_mb": 1000, "runtime": 10},
    }
    config.update(changes)
    return config


def test_workflow_flow_must_be_the_bundles(bundle) -> None:
    from fusionseg.config import check_config

    config = check_config(bundle_config(bundle, flow={"method": "dis"}))
    with pytest.raises(ConfigError, match=r"trained on tvl1 flow, per-frame colour coding, but the config makes dis flow.*set flow\.method: tvl1"):
        check_models_config(config)
    fixed = check_config(bundle_config(bundle, flow_rgb={"normalization": "fixed", "max_flow": 5.0}))
    with pytest.raises(ConfigError, match=r"flow_rgb\.normalization: per_frame"):
        check_models_config(fixed)


def test_models_section_is_a_bundle_or_three_checkpoints(bundle, trained) -> None:
    from fusionseg.config import check_config

    with pytest.raises(ConfigError, match=r"models: give either bundle, or all of appearance, motion and fusion \(got appearance\)"):
        check_models_config(check_config(bundle_config(bundle, models={"appearance": str(trained / "run/models/appearance.pt")})))
    training = bundle_config(bundle)
    training["roles"]["fusion_train"] = [{"dataset": "synth", "sequences": ["clip001"]}]
    training["role_overlap"] = [["fusion_train", "benchmark"]]
    with pytest.raises(ConfigError, match=r"nothing is trained; remove the training role\(s\) fusion_train"):
        check_models_config(check_config(training))


def test_export_refuses_a_run_that_trained_nothing(bundle, tmp_path) -> None:
    config = tmp_path / "bundled.yaml"
    config.write_text(yaml.safe_dump(bundle_config(bundle)))
    with pytest.raises(ConfigError, match=r"bundled\.yaml: models: this run used trained models from elsewhere"):
        export_bundle(config, tmp_path / "again.zip")


def test_a_bundle_config_plans_no_training(bundle, tmp_path) -> None:
    write_config(tmp_path, bundle_config(bundle))
    jobs = job_counts(dry_run(tmp_path))
    assert not {"train_appearance", "train_motion", "train_fusion", "bootstrap"} & set(jobs)
    assert jobs["import_models"] == 1 and jobs["segment_sequence"] == 1
    assert jobs["infer_appearance"] == jobs["infer_motion"] == jobs["infer_joint"] == 2  # segment + benchmark clip


def test_three_checkpoints_plan_no_training_either(trained, tmp_path) -> None:
    models = {name: str(trained / "run" / "models" / f"{name}.pt") for name in ("appearance", "motion", "fusion")}
    write_config(tmp_path, bundle_config(Path("unused"), models=models))
    jobs = job_counts(dry_run(tmp_path))
    assert not {"train_appearance", "train_motion", "train_fusion", "bootstrap"} & set(jobs)
    assert jobs["import_models"] == 1 and jobs["segment_sequence"] == 1


def test_import_models_unpacks_a_verified_bundle(bundle, tmp_path) -> None:
    from fusionseg.bundles.importing import import_models
    from fusionseg.bundles.manifest import FlowConvention

    provenance = import_models(tmp_path / "imported", FlowConvention("tvl1", {}, "per_frame", None), bundle=bundle)
    assert provenance["bundle_sha256"] == file_sha256(bundle)
    recorded = json.loads((tmp_path / "imported" / "provenance.json").read_text())
    assert recorded["checkpoint_sha256"]["motion"] == file_sha256(tmp_path / "imported" / "motion.pt")
    with pytest.raises(ConfigError, match="trained on tvl1 flow"):
        import_models(tmp_path / "refused", FlowConvention("farneback", {}, "per_frame", None), bundle=bundle)
    assert not (tmp_path / "refused").exists()


def test_import_models_checks_single_checkpoints_against_their_places(trained, tmp_path) -> None:
    from fusionseg.bundles.importing import import_models
    from fusionseg.bundles.manifest import FlowConvention

    models = {name: trained / "run" / "models" / f"{name}.pt" for name in ("appearance", "motion", "fusion")}
    flow = FlowConvention("tvl1", {}, "per_frame", None)
    provenance = import_models(tmp_path / "imported", flow, checkpoints=models)
    assert provenance["bundle_sha256"] is None
    assert provenance["checkpoint_sha256"]["fusion"] == file_sha256(tmp_path / "imported" / "fusion.pt") == file_sha256(models["fusion"])
    swapped = {**models, "appearance": models["motion"]}
    with pytest.raises(InputError, match=r"motion\.pt: holds a checkpoint of the motion stream .* appearance model's place"):
        import_models(tmp_path / "swapped", flow, checkpoints=swapped)
    assert not (tmp_path / "swapped").exists()


def test_shipped_bundle_is_checked_and_says_its_terms() -> None:
    path = bundle_manifest.default_bundle_path()
    if not path.is_file():
        pytest.skip(f"{path} not built yet (fusionseg/bundles/README.md says how)")
    shipped = read_bundle(path)
    assert path.stat().st_size < 30e6  # FusionSeg's three models and TSN (18 MB), float16
    assert "CC BY-NC" in shipped.manifest["licence"]
    assert shipped.max_side == 427 and shipped.flow.method == "tvl1"
    assert shipped.manifest["scores"]["summary"]


def test_missing_default_bundle_says_how_to_get_one(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(bundle_manifest, "default_bundle_path", lambda: tmp_path / "davis-cpu.zip")
    clip = tmp_path / "frames"
    clip.mkdir()
    line = one_error_line(capsys, ["segment", str(clip), "--out", str(tmp_path / "out")])
    assert "no model bundle is installed" in line and "export-models" in line and "--models" in line


# ---- TSN, the methods a bundle runs, and its default method ----------------------------------------

FOUR_METHODS = ["saliency", "appearance", "motion", "joint"]
# A validation summary: TSN (semi-supervised, which no bundle runs) is best; among what bundles run,
# Ours-Joint+TSN, then Ours-Joint (mean J&F over both datasets).
VALIDATION = pd.DataFrame({
    "method": ["Saliency", "Ours-A", "Ours-Joint", "Ours-Joint+TSN", "TSN"],
    "method_id": ["saliency", "appearance", "joint", "joint-tsn", "tsn"],
    "synth J&F": [0.30, 0.40, 0.45, 0.50, 0.90],
    "synth J": [0.30, 0.40, 0.45, 0.50, 0.90],
    "other J&F": [0.50, 0.40, 0.45, 0.60, 0.90],
})  # fmt: skip


def test_bundle_carries_tsn_when_the_run_trained_it(tsn_bundle, trained_tsn, tmp_path) -> None:
    manifest = read_manifest(tsn_bundle)
    assert manifest["models"]["tsn"]["arch"] == TSNModel(tsn_arch(tsn_params(json.dumps(TINY_TSN)))).arch
    # TSN's inference settings as the run scored it (the config's tsn section: schema defaults here)
    assert manifest["models"]["tsn"]["input"] == {
        "kind": "rgb", "seed": {"method": "joint", "frame": "auto", "anchors": 1}, "top_k": 20, "mem_every": 5,
    }  # fmt: skip
    assert read_bundle(tsn_bundle).tsn_settings == {"anchors": 1, "top_k": 20, "mem_every": 5}
    assert manifest["methods"] == [*FOUR_METHODS, "joint-tsn"] and manifest["format"] == "fusionseg-bundle-2"
    stored = torch.load(io.BytesIO(member(tsn_bundle, "tsn.pt")), weights_only=True)["model"]
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    verified = read_bundle(tsn_bundle)
    assert verified.methods == manifest["methods"]
    assert verified.provenance()["checkpoint_sha256"]["tsn"] == manifest["files"]["tsn.pt"]["sha256"]
    restored, config = load_tsn(extract_models(verified, tmp_path)["tsn"])
    original, _ = load_tsn(trained_tsn / "run" / "models" / "tsn.pt")
    assert all(p.dtype == torch.float32 for p in restored.parameters()) and config["mem_every"] == 5
    for (name, mine), (_, theirs) in zip(restored.state_dict().items(), original.state_dict().items()):
        assert torch.allclose(mine.float(), theirs.float(), rtol=1e-3, atol=1e-4), name


def test_bundle_without_tsn_runs_four_methods_and_defaults_to_joint(bundle) -> None:
    manifest = read_manifest(bundle)
    assert manifest["methods"] == FOUR_METHODS and "tsn" not in manifest["models"]
    assert manifest["default_method"] == "joint" and manifest["default_method_choice"]["by"] == "fallback"


def test_tsn_among_the_systems_but_not_trained_is_left_out(trained, tmp_path, caplog) -> None:
    config = tmp_path / "tsn.yaml"
    config.write_text(yaml.safe_dump({**TRAINING_CONFIG, "systems": ["fusionseg", "tsn"]}))
    manifest = export_bundle(config, tmp_path / "b.zip", models_dir=trained / "run" / "models", scores=False)
    assert manifest["methods"] == FOUR_METHODS
    assert "tsn.pt: not found, so the bundle carries no TSN" in caplog.text


def test_default_method_is_the_best_runnable_one_on_the_validation_summary(trained, trained_tsn, tmp_path) -> None:
    VALIDATION.to_csv(tmp_path / "validation.csv", index=False)
    with_tsn = export_bundle(trained_tsn / "train.yaml", tmp_path / "t.zip", models_dir=trained_tsn / "run" / "models",
                             scores=False, validation_summary=tmp_path / "validation.csv")  # fmt: skip
    assert with_tsn["default_method"] == "joint-tsn"
    assert with_tsn["default_method_choice"] == {
        "by": "validation", "summary": str(tmp_path / "validation.csv"),
        "mean_j_and_f": {"saliency": 0.4, "appearance": 0.4, "joint": 0.45, "joint-tsn": 0.55},
    }  # fmt: skip
    without = export_bundle(trained / "train.yaml", tmp_path / "j.zip", models_dir=trained / "run" / "models",
                            scores=False, validation_summary=tmp_path / "validation.csv")  # fmt: skip
    assert without["default_method"] == "joint" and "joint-tsn" not in without["default_method_choice"]["mean_j_and_f"]
    assert read_bundle(tmp_path / "t.zip").default_method == "joint-tsn"


def test_default_method_option_wins_and_must_be_runnable(trained, tmp_path, monkeypatch, capsys) -> None:
    run = shutil.copytree(trained, tmp_path / "run-with-validation")  # the shared run stays without one
    monkeypatch.chdir(run)
    (run / "run" / "results" / "validation").mkdir()
    VALIDATION.to_csv(run / "run" / "results" / "validation" / "summary.csv", index=False)
    out = tmp_path / "m.zip"
    assert main(["export-models", "--config", "train.yaml", "--out", str(out), "--no-scores", "--default-method", "motion"]) == 0
    assert read_bundle(out).default_method == "motion" and read_manifest(out)["default_method_choice"] == {"by": "--default-method"}
    assert main(["export-models", "--config", "train.yaml", "--out", str(out), "--no-scores"]) == 0
    assert read_manifest(out)["default_method_choice"]["summary"] == "run/results/validation/summary.csv"  # the run's, found by default
    line = one_error_line(capsys, ["export-models", "--config", "train.yaml", "--out", str(tmp_path / "x.zip"), "--no-scores",
                                   "--default-method", "joint+tsn"])  # fmt: skip
    assert line == "fusionseg export-models: error: --default-method joint+tsn: the bundle can run saliency, appearance, motion, joint"
    line = one_error_line(capsys, ["export-models", "--config", "train.yaml", "--out", str(tmp_path / "x.zip"), "--no-scores",
                                   "--validation-summary", "nowhere.csv"])  # fmt: skip
    assert line == "fusionseg export-models: error: nowhere.csv: validation summary not found"
    assert not (tmp_path / "x.zip").exists()


def test_older_bundles_run_four_methods_and_default_to_joint(bundle, tmp_path, caplog) -> None:
    def before_methods(manifest: dict) -> None:
        for key in ("methods", "default_method", "default_method_choice"):
            manifest.pop(key)

    second = read_bundle(rewrite_bundle(bundle, tmp_path / "second.zip", edit=before_methods))
    assert (second.methods, second.default_method) == (FOUR_METHODS, "joint")
    with zipfile.ZipFile(tmp_path / "second.zip") as source, zipfile.ZipFile(tmp_path / "first.zip", "w") as first:
        manifest = json.loads(source.read(MANIFEST_NAME))
        first.writestr(MANIFEST_NAME, json.dumps({**manifest, "format": "fusionseg-bundle-1"}))
        for name in manifest["files"]:
            first.writestr(name, source.read(name))
    oldest = read_bundle(tmp_path / "first.zip")
    assert (oldest.methods, oldest.default_method) == (FOUR_METHODS, "joint") and "export it again" in caplog.text


def test_methods_must_be_ones_the_models_run(bundle, tmp_path) -> None:
    claims_tsn = rewrite_bundle(bundle, tmp_path / "claims.zip", edit=lambda m: m["methods"].append("joint-tsn"))
    with pytest.raises(InputError, match=r"claims\.zip: manifest\.json lists methods .*joint-tsn.*; its models run saliency, appearance, motion, joint$"):
        read_bundle(claims_tsn)
    default = rewrite_bundle(bundle, tmp_path / "default.zip", edit=lambda m: m.update(default_method="segflow"))
    with pytest.raises(InputError, match=r"default\.zip: manifest\.json gives default_method 'segflow', which is not among its methods"):
        read_bundle(default)


def test_tsn_place_holds_a_tsn_checkpoint(tsn_bundle, tmp_path) -> None:
    swapped = rewrite_bundle(tsn_bundle, tmp_path / "swapped.zip", {"tsn.pt": member(tsn_bundle, "fusion.pt")})
    with pytest.raises(InputError, match=r"swapped\.zip: tsn\.pt: holds a checkpoint of the fusion model, but this is the tsn model's place"):
        read_bundle(swapped)
