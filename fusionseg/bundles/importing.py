"""Trained models from elsewhere in the workflow (config `models:`): the section's check, and
`import_models`, which checks a bundle or three checkpoints and unpacks them for inference."""

from __future__ import annotations

import json
from pathlib import Path

from fusionseg.bundles.manifest import (
    MODEL_NAMES,
    TRAINING_ROLES,
    FlowConvention,
    check_flow_matches,
    flow_convention_of,
    manifest_flow,
)
from fusionseg.bundles.verify import check_checkpoint, extract_models, read_bundle, read_manifest
from fusionseg.errors import ConfigError


def check_models_config(config: dict, source: str = "config") -> None:
    """`models:` names a bundle, or all three checkpoints, or nothing (train them); with models given,
    the training roles must be empty and a bundle's flow convention must be the config's."""
    models = config.get("models") or {}
    if not models:
        return
    given = sorted(models)
    if ("bundle" in models and len(models) > 1) or ("bundle" not in models and set(models) != set(MODEL_NAMES)):
        raise ConfigError(
            f"{source}: models: give either bundle, or all of appearance, motion and fusion (got {', '.join(given)})"
        )
    for key, value in models.items():
        if not Path(value).is_file():
            raise ConfigError(f"{source}: models.{key}: '{value}' does not exist")
    training = [role for role in TRAINING_ROLES if config["roles"].get(role)]
    if training:
        raise ConfigError(
            f"{source}: models: trained models are given, so nothing is trained; remove the training role(s) "
            f"{', '.join(training)} (or models: to train here)"
        )
    if "bundle" in models:
        bundle_flow = manifest_flow(Path(models["bundle"]), read_manifest(models["bundle"]))
        check_flow_matches(bundle_flow, flow_convention_of(config), models["bundle"], source)


def import_models(out_dir: str | Path, flow: FlowConvention, bundle: str | Path | None = None,
                  checkpoints: dict[str, str | Path] | None = None) -> dict:
    """The workflow's models from elsewhere, checked, into `out_dir` (<name>.pt and provenance.json).

    A bundle is verified and unpacked (its flow convention must be `flow`); single checkpoints are
    checked against their slots and copied (they record no input convention, so that stays unchecked).
    The folder is written whole or not at all; returns the provenance it records."""
    from fusionseg.io import FormerOutput, atomic_dir
    from fusionseg.io import file_sha256
    from fusionseg.models.checkpoint import read_checkpoint

    # A folder imported before folders carried their marker: its provenance.json says it is ours.
    former = FormerOutput("provenance.json", ("provenance.json", *(f"{name}.pt" for name in MODEL_NAMES)))
    sources = [bundle] if bundle is not None else list(checkpoints.values())
    with atomic_dir(out_dir, "imported models", sources, former) as tmp:
        if bundle is not None:
            verified = read_bundle(bundle)
            check_flow_matches(verified.flow, flow, str(bundle), "config")
            extract_models(verified, tmp, MODEL_NAMES)  # the workflow runs TSN only where it trains it
            provenance = {**verified.provenance(), "models": verified.manifest["models"], "max_side": verified.max_side}
        else:
            provenance = {"bundle": None, "bundle_sha256": None, "checkpoint_sha256": {}, "checkpoints": {},
                          "note": "single checkpoints record no input convention; flow settings unchecked"}  # fmt: skip
            for name in MODEL_NAMES:
                path = Path(checkpoints[name])
                check_checkpoint(read_checkpoint(path), name, None, str(path))
                (tmp / f"{name}.pt").write_bytes(path.read_bytes())
                provenance["checkpoint_sha256"][name] = file_sha256(path)
                provenance["checkpoints"][name] = str(path)
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    return provenance
