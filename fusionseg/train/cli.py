"""Subcommands train-appearance, train-motion and train-fusion."""

from __future__ import annotations

import argparse

from fusionseg.config import add_run_options, with_run_options
from fusionseg.devices import set_threads


def register(subparsers: argparse._SubParsersAction) -> None:
    appearance = subparsers.add_parser("train-appearance", help="train the appearance stream on annotated frames")
    appearance.add_argument("--frames", nargs="+", default=[], metavar="FRAMES_DIR", help="<root>/JPEGImages/480p/<seq> folders; their annotated frames are used")
    appearance.add_argument("--images", action="append", default=[], metavar="MANIFEST", help="manifest.csv of an image cache written by `fusionseg extract-images` (repeatable)")
    _common_options(appearance, "appearance")
    appearance.set_defaults(handler=_train_appearance)

    motion = subparsers.add_parser("train-motion", help="train the motion stream on flow images with (pseudo) masks")
    motion.add_argument("--manifest", action="append", default=[], help="bootstrap manifest.csv of pseudo-label shards (repeatable)")
    motion.add_argument(
        "--annotated", nargs=2, action="append", default=[], metavar=("FRAMES_DIR", "FLOW_RGB_DIR"),
        help="an annotated sequence's frame folder (for its masks) and its flow-image folder (repeatable)",
    )
    _common_options(motion, "motion")
    motion.set_defaults(handler=_train_motion)

    fusion = subparsers.add_parser("train-fusion", help="train the 24-parameter fusion layer on held-out annotated video")
    fusion.add_argument("--frames", nargs="+", required=True, metavar="FRAMES_DIR")
    fusion.add_argument("--appearance-probs", nargs="+", required=True, metavar="H5", help="aligned with --frames")
    fusion.add_argument("--motion-probs", nargs="+", required=True, metavar="H5", help="aligned with --frames")
    _common_options(fusion, "fusion")
    fusion.set_defaults(handler=_train_fusion)


def _common_options(parser: argparse.ArgumentParser, section: str) -> None:
    parser.add_argument("--out", required=True, help="checkpoint to write (.pt); <out>.log.csv and <out>.resume.pt beside it")
    parser.add_argument("--params", default="{}", metavar="JSON", help=f"the config's {section} section as JSON (defaults filled)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    add_run_options(parser, section)


def _params(args: argparse.Namespace, section: str) -> dict:
    from fusionseg.config import section_params

    params = with_run_options(section, section_params(section, args.params), args)
    set_threads(args.threads)
    return params


def _train_appearance(args: argparse.Namespace) -> None:
    from fusionseg.datasets.image_cache import ImageMaskSamples
    from fusionseg.errors import InputError
    from fusionseg.train.data import AnnotatedFrames, ConcatSources
    from fusionseg.train.loop import data_identity
    from fusionseg.train.streams import train_stream

    params = _params(args, "appearance")
    if not args.frames and not args.images:
        raise InputError("train-appearance: give --frames (annotated sequences) and/or --images (image cache manifests)")
    sources = ([AnnotatedFrames(args.frames)] if args.frames else []) + [ImageMaskSamples(m) for m in args.images]
    train_stream("appearance", ConcatSources(sources), params, args.out, data_identity(args.frames, args.images))


def _train_motion(args: argparse.Namespace) -> None:
    from fusionseg.errors import InputError
    from fusionseg.train.data import AnnotatedFrames, ConcatSources, ShardSamples
    from fusionseg.train.loop import data_identity
    from fusionseg.train.streams import train_stream

    params = _params(args, "motion")
    if not args.manifest and not args.annotated:
        raise InputError("train-motion: give --manifest (pseudo-label shards) and/or --annotated FRAMES_DIR FLOW_RGB_DIR")
    sources = [ShardSamples(m) for m in args.manifest]
    frames, flows = zip(*args.annotated) if args.annotated else ((), ())
    if args.annotated:
        sources.append(AnnotatedFrames(frames, flows))
    train_stream("motion", ConcatSources(sources), params, args.out, data_identity(frames, [*args.manifest, *flows]))


def _train_fusion(args: argparse.Namespace) -> None:
    from fusionseg.train.loop import data_identity
    from fusionseg.train.streams import FusionData, train_fusion

    params = _params(args, "fusion")
    data = FusionData(args.frames, args.appearance_probs, args.motion_probs)
    train_fusion(data, params, args.out, data_identity(args.frames, [*args.appearance_probs, *args.motion_probs]))
