"""Subcommands export-models (a bundle of the models a run trained) and import-models (models from
elsewhere, checked and unpacked for the workflow)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_export(subparsers)
    _register_import(subparsers)


def _register_export(subparsers: argparse._SubParsersAction) -> None:
    from fusionseg.bundles.manifest import METHOD_ALIASES, METHOD_MODELS

    parser = subparsers.add_parser(
        "export-models",
        help="write a model bundle (.zip) of the models a config trained (FusionSeg's three; TSN when trained)",
        description=(
            "Run from the workflow's working directory: the config's out_dir holds models/, results/summary.csv, "
            "results/validation/summary.csv and config.effective.yaml (the config the run used, written when it "
            "finished), which the bundle records."
        ),
    )
    parser.add_argument(
        "--config", required=True, type=Path,
        help="the run's config file, its out_dir, or its config.effective.yaml: the bundle records the last",
    )  # fmt: skip
    parser.add_argument("--out", required=True, type=Path, help="bundle to write (.zip)")
    parser.add_argument("--models-dir", type=Path, help="folder of appearance.pt, motion.pt, fusion.pt (default: OUT_DIR/models)")
    parser.add_argument("--summary", type=Path, help="benchmark summary to record (default: OUT_DIR/results/summary.csv)")
    parser.add_argument("--no-scores", action="store_true", help="record no benchmark scores")
    parser.add_argument("--licence", help="licence note for the manifest (default: from the training datasets and backbone)")
    parser.add_argument(
        "--validation-summary", type=Path,
        help="validation summary the default method is chosen on (default: OUT_DIR/results/validation/summary.csv, if there)",
    )
    parser.add_argument(
        "--default-method", choices=[*METHOD_MODELS, *METHOD_ALIASES],
        help="the method `fusionseg segment` runs unless told (default: the best J&F on the validation summary, else joint)",
    )
    parser.set_defaults(handler=_export)


def _register_import(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import-models",
        help="check models from elsewhere (a bundle, or three checkpoints) and unpack them for the workflow",
    )
    parser.add_argument("--out-dir", required=True, type=Path, help="folder to write <name>.pt and provenance.json into")
    parser.add_argument("--bundle", type=Path)
    for name in ("appearance", "motion", "fusion"):
        parser.add_argument(f"--{name}", type=Path, help=f"{name} checkpoint (instead of --bundle)")
    parser.add_argument("--flow-method", required=True, help="the workflow's flow.method")
    parser.add_argument("--normalization", required=True, help="the workflow's flow_rgb.normalization")
    parser.add_argument("--max-flow", type=float, help="the workflow's flow_rgb.max_flow")
    parser.set_defaults(handler=_import)


def _export(args: argparse.Namespace) -> None:
    from fusionseg.bundles.export import export_bundle
    from fusionseg.config import load_config, run_config_path

    effective = run_config_path(args.config)
    trained = load_config(effective)
    _note_other_settings(args.config, effective, trained)
    _check_trained_before(args.models_dir or Path(trained["out_dir"]) / "models", effective)
    manifest = export_bundle(effective, args.out, args.models_dir, args.summary, not args.no_scores, args.licence,
                             args.validation_summary, args.default_method)  # fmt: skip
    size = args.out.stat().st_size / 1e6
    print(
        f"{args.out}: {size:.1f} MB, models trained at max_side {manifest['max_side']}, commit {manifest['git_commit']}, "
        f"methods {', '.join(manifest['methods'])}, default {manifest['default_method']} (by {manifest['default_method_choice']['by']})"
    )


def _note_other_settings(given: Path, effective: Path, trained: dict) -> None:
    """A warning when the config file given is not what the run used (edited since, or another config)."""
    from fusionseg.config import differences, load_config

    if given.is_file() and given.resolve() != effective.resolve():
        changed = differences(load_config(given), trained)
        if changed:
            log.warning("%s differs from %s at %s; the bundle records the latter, the config the models were trained with",
                        given, effective, ", ".join(changed[:5]))  # fmt: skip


def _check_trained_before(models_dir: Path, effective: Path) -> None:
    """Models written after the run's effective config were trained by a run that did not finish (or by a
    single target): the config they were trained with is not known, so they are not exported."""
    from fusionseg.bundles.manifest import MODEL_NAMES
    from fusionseg.errors import ConfigError

    written = effective.stat().st_mtime
    for name in MODEL_NAMES:
        path = models_dir / f"{name}.pt"
        if path.is_file() and path.stat().st_mtime > written:
            raise ConfigError(
                f"{path}: trained after {effective} was written, by a run that did not finish; "
                "finish it (snakemake) before exporting"
            )


def _import(args: argparse.Namespace) -> None:
    from fusionseg.bundles.importing import import_models
    from fusionseg.bundles.manifest import MODEL_NAMES, FlowConvention
    from fusionseg.errors import ConfigError

    checkpoints = {name: getattr(args, name) for name in MODEL_NAMES if getattr(args, name)}
    if bool(args.bundle) == bool(checkpoints) or (checkpoints and len(checkpoints) != len(MODEL_NAMES)):
        raise ConfigError("import-models: give --bundle, or all of --appearance, --motion and --fusion")
    flow = FlowConvention(args.flow_method, {}, args.normalization, args.max_flow)
    provenance = import_models(args.out_dir, flow, args.bundle, checkpoints or None)
    log.info("%s: models from %s", args.out_dir, provenance.get("bundle") or "checkpoints")
