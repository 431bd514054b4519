"""Subcommands segment (one process, any video, with a model bundle) and segment-outputs (the segment
role's last rule)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from fusionseg.devices import set_threads

if TYPE_CHECKING:
    from fusionseg.bundles.manifest import Bundle


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_segment(subparsers)
    _register_segment_outputs(subparsers)


def _register_segment(subparsers: argparse._SubParsersAction) -> None:
    from fusionseg.bundles.manifest import METHOD_ALIASES, METHOD_MODELS

    parser = subparsers.add_parser(
        "segment",
        help="segment your own videos with a model bundle: masks, overlay videos, report",
        description="Each video file, image folder, folder of videos or DAVIS-layout root gives OUT/<name>/ "
        "(masks/ at the source's size, overlay.webm, masks-saliency/, overlay-saliency.webm, segment.json); "
        "OUT/report.html shows them all.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="VIDEO_OR_FOLDER")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--models", type=Path, metavar="BUNDLE", help="model bundle (.zip); default: the one shipped with fusionseg")
    parser.add_argument(
        "--method", choices=[*METHOD_MODELS, *METHOD_ALIASES],
        help="joint: Ours-Joint (both streams fused); joint-tsn (or joint+tsn): TSN propagating Ours-Joint's mask; "
        "saliency: U²-Netp per frame; appearance, motion: one stream (default: the bundle's default_method)",
    )
    parser.add_argument("--no-saliency", action="store_true", help="do not compute the Saliency row beside the method")
    parser.add_argument("--max-side", type=int, help="working size: longer frame side the networks see (default: the bundle's training size)")
    parser.add_argument("--threshold", type=float, default=0.5, help="foreground where the probability > threshold")
    parser.add_argument("--fps", type=float, help="overlay frame rate for image folders (videos keep their own; default 24)")
    parser.add_argument(
        "--stream-overlays", action="store_true",
        help="also masks and overlays of what the method was made from (joint: Ours-A, Ours-M; joint-tsn: and Ours-Joint)",
    )
    parser.add_argument("--batch-size", type=int, default=4, help="frames (and flow pairs) per batch")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and OpenCV")
    parser.set_defaults(handler=_segment)


def _register_segment_outputs(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment-outputs",
        help="a segmented sequence's masks (source size), overlay video and segment.json from its probabilities",
    )
    parser.add_argument("--frames", required=True, type=Path, metavar="FRAMES_DIR", help="the sequence's frame folder")
    parser.add_argument("--joint-probs", required=True, type=Path, metavar="H5", help="Ours-Joint: masks/, overlay.webm")
    parser.add_argument("--appearance-probs", type=Path, metavar="H5")
    parser.add_argument("--motion-probs", type=Path, metavar="H5")
    parser.add_argument("--saliency-probs", type=Path, metavar="H5", help="the Saliency row, shown beside: masks-saliency/")
    parser.add_argument("--joint-tsn-probs", type=Path, metavar="H5", help="Ours-Joint+TSN, shown beside: masks-joint-tsn/")
    parser.add_argument("--flow", type=Path, metavar="H5", help="the sequence's flow file (its method is recorded)")
    parser.add_argument("--source", help="dataset root (or video file) the frames came from: overlays use its native frames")
    parser.add_argument("--layout", help="the source's layout (with --source)")
    parser.add_argument("--resolution", default="480p", help="DAVIS resolution folder of the source")
    parser.add_argument("--models-provenance", type=Path, metavar="JSON", help="provenance.json of models from elsewhere (import-models)")
    parser.add_argument("--name", help="name shown in the report (default: the sequence's)")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--stream-overlays", action="store_true")
    parser.add_argument("--out", required=True, type=Path, help="the sequence's output folder")
    parser.set_defaults(handler=_segment_outputs)


def _segment(args: argparse.Namespace) -> None:
    from fusionseg.bundles.manifest import default_bundle
    from fusionseg.bundles.verify import read_bundle
    from fusionseg.segment.pipeline import SegmentOptions, segment_sources
    from fusionseg.segment.sources import find_sources

    _check_segment_options(args)
    set_threads(args.threads)
    bundle = read_bundle(args.models or default_bundle())
    method = _bundle_method(bundle, args.method, args.stream_overlays)
    sources = find_sources(args.inputs)
    options = SegmentOptions(method, args.max_side, args.device, args.batch_size, args.threshold, args.fps,
                             not args.no_saliency, args.stream_overlays)  # fmt: skip
    for result in segment_sources(sources, args.out, bundle, options):
        print(f"{result.out_dir}: {method}, {result.frames} frames in {result.seconds:.1f} s ({result.frames / result.seconds:.2f} frames/s)")
    print(f"{args.out / 'report.html'}: overlay videos, contact sheets and mask areas")


def _bundle_method(bundle: Bundle, requested: str | None, stream_overlays: bool) -> str:
    """The method to run: `requested` (aliases resolved) or the bundle's default; one the bundle can run."""
    from fusionseg.errors import ConfigError, InputError
    from fusionseg.bundles.manifest import canonical_method
    from fusionseg.segment.pipeline import made_from

    method = canonical_method(requested) if requested else bundle.default_method
    if method not in bundle.methods:
        missing = "" if method != "joint-tsn" else " (it carries no TSN: export one from a run whose systems have tsn)"
        raise InputError(f"{bundle.path}: this bundle cannot run method {method}{missing}; it runs {', '.join(bundle.methods)}")
    if stream_overlays and not made_from(method):
        raise ConfigError(f"--stream-overlays: method {method} runs one network; there is no stream of it to show")
    return method


def _check_segment_options(args: argparse.Namespace) -> None:
    from fusionseg.errors import ConfigError

    if args.max_side is not None and args.max_side < 16:
        raise ConfigError(f"--max-side: must be at least 16 (got {args.max_side})")
    if not 0 <= args.threshold <= 1:
        raise ConfigError(f"--threshold: must be in [0, 1] (got {args.threshold})")
    if args.fps is not None and not args.fps > 0:
        raise ConfigError(f"--fps: must be positive (got {args.fps})")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: must be at least 1 (got {args.batch_size})")


def _segment_outputs(args: argparse.Namespace) -> None:
    import json

    from fusionseg.errors import ConfigError, InputError
    from fusionseg.flow.sequence import read_flow_attrs
    from fusionseg.segment.outputs import SegmentInputs, write_segment_outputs
    from fusionseg.segment.sources import dataset_fps, dataset_frames
    from fusionseg.segment.video import DEFAULT_FPS

    if (args.source is None) != (args.layout is None):
        raise ConfigError("--source and --layout go together")
    provenance = {"source": args.source}
    if args.models_provenance:
        if not args.models_provenance.is_file():
            raise InputError(f"{args.models_provenance}: models provenance file not found")
        provenance["models"] = json.loads(args.models_provenance.read_text())
    if args.flow:
        attrs = read_flow_attrs(args.flow)
        provenance["flow"] = {"method": attrs.get("method"), "params": attrs["params"]}
    streams = {s: p for s, p in (("appearance", args.appearance_probs), ("motion", args.motion_probs)) if p}
    if args.stream_overlays and len(streams) < 2:
        raise ConfigError("--stream-overlays: needs --appearance-probs and --motion-probs")
    compared = {m: p for m, p in (("saliency", args.saliency_probs), ("joint-tsn", args.joint_tsn_probs)) if p}
    name = args.name or args.frames.name
    inputs = SegmentInputs(
        name=name,
        frames_dir=args.frames,
        method="joint",
        probs=args.joint_probs,
        source_frames=dataset_frames(args.frames, args.layout, args.source, args.resolution),
        fps=dataset_fps(args.layout, args.source, args.frames.name) or DEFAULT_FPS,
        threshold=args.threshold,
        intermediate=streams,
        compared=compared,
        provenance=provenance,
    )
    record = write_segment_outputs(inputs, args.out, args.stream_overlays)
    print(f"{args.out}: {record['frames']} masks at {record['source_size'][0]}x{record['source_size'][1]}, {', '.join(record['outputs'])}")
