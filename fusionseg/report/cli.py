"""`fusionseg report`: the self-contained HTML report (all images inlined; no external assets)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fusionseg.errors import InputError

DEFAULT_OVERLAY_FRAMES = 4


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report",
        help="self-contained HTML report: summary tables, per-sequence J charts, overlay strips, bootstrap, timings",
        description="Only --out is required; every input adds its section.",
    )
    report.add_argument("--summary", type=Path, help="summary CSV from `fusionseg summarize`")
    report.add_argument("--scores", nargs="+", type=Path, default=[], metavar="CSV", help="per-sequence score CSVs")
    report.add_argument(
        "--validation-summary", type=Path,
        help="summary CSV of the validation split (held-out training sequences the settings were chosen on)",
    )
    report.add_argument(
        "--frames-root", nargs="+", default=[], metavar="DATASET=DIR",
        help="DAVIS-layout roots (frames and ground truth) per dataset, for the overlay strips",
    )
    report.add_argument("--flow-rgb-root", type=Path, help="folder holding <dataset>/<seq>/00000.png flow images")
    report.add_argument("--masks-root", type=Path, help="folder holding <method>/<dataset>/<seq>/00000.png masks")
    report.add_argument("--routing-root", type=Path, help="folder holding <dataset>/<seq>.h5 TSN routing maps (infer-tsn --routing-out)")
    report.add_argument("--funnel", type=Path, help="bootstrap funnel CSV (pseudo/funnel.csv)")
    report.add_argument("--quality", type=Path, help="pseudo-label quality CSV (pseudo/quality.csv)")
    report.add_argument("--flow-epe", type=Path, help="optical flow end-point-error table (CSV)")
    report.add_argument("--benchmarks", type=Path, help="folder of Snakemake benchmark TSV files")
    report.add_argument(
        "--segment", nargs="+", type=Path, default=[], metavar="DIR",
        help="segmented sequence folders (segment role, fusionseg segment): a contact sheet of each overlay video",
    )
    roles = report.add_mutually_exclusive_group()
    roles.add_argument("--roles", type=Path, help="CSV with columns role, dataset, sequence")
    roles.add_argument("--config", type=Path, help="workflow config: roles and report.overlay_frames from it")
    report.add_argument("--overlay-frames", type=int, help=f"frames per overlay strip (default: config or {DEFAULT_OVERLAY_FRAMES})")
    report.add_argument("--title", default="FusionSeg results")
    report.add_argument("--out", required=True, type=Path, help="report.html")
    report.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> None:
    from fusionseg.io import atomic_file
    from fusionseg.report.build import ReportInputs, build_report, roles_from_config, roles_from_csv

    config = _load_config(args.config)
    overlay_frames = args.overlay_frames or (config["report"]["overlay_frames"] if config else DEFAULT_OVERLAY_FRAMES)
    if overlay_frames < 1:
        raise InputError(f"--overlay-frames: must be at least 1 (got {overlay_frames})")
    roles = roles_from_csv(args.roles) if args.roles else roles_from_config(config) if config else None
    inputs = ReportInputs(
        summary=args.summary,
        scores=args.scores,
        validation_summary=args.validation_summary,
        frames_roots=_dataset_paths(args.frames_root),
        flow_rgb_root=args.flow_rgb_root,
        masks_root=args.masks_root,
        funnel=args.funnel,
        quality=args.quality,
        flow_epe=args.flow_epe,
        benchmarks=args.benchmarks,
        roles=roles,
        segment=args.segment,
        routing_root=args.routing_root,
        overlay_frames=overlay_frames,
        title=args.title,
        out_dir=args.out.parent,
    )
    document = build_report(inputs)
    with atomic_file(args.out) as tmp:
        tmp.write_text(document, encoding="utf-8")
    print(f"{args.out}: {len(document) / 1e6:.1f} MB")


def _load_config(path: Path | None) -> dict | None:
    if path is None:
        return None
    from fusionseg.config import load_config

    return load_config(path)


def _dataset_paths(items: list[str]) -> dict[str, Path]:
    """Parse DATASET=DIR pairs; each folder must exist."""
    paths = {}
    for item in items:
        dataset, sep, folder = item.partition("=")
        if not sep or not dataset or not folder:
            raise InputError(f"--frames-root: '{item}' is not DATASET=DIR")
        if not Path(folder).is_dir():
            raise InputError(f"--frames-root: {folder}: folder not found")
        paths[dataset] = Path(folder)
    return paths
