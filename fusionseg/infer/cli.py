"""Subcommands infer-appearance, infer-motion, infer-joint and masks."""

from __future__ import annotations

import argparse

from fusionseg.devices import DEVICES, set_threads


def register(subparsers: argparse._SubParsersAction) -> None:
    appearance = subparsers.add_parser("infer-appearance", help="appearance-stream probabilities for a sequence's frames")
    appearance.add_argument("--frames", required=True, metavar="FRAMES_DIR")
    _model_options(appearance)
    appearance.set_defaults(handler=_infer_appearance)

    motion = subparsers.add_parser("infer-motion", help="motion-stream probabilities for a sequence's flow images")
    motion.add_argument("--flow-rgb", required=True, metavar="FLOW_RGB_DIR")
    _model_options(motion)
    motion.set_defaults(handler=_infer_motion)

    joint = subparsers.add_parser("infer-joint", help="fused probabilities from the two streams' probability files")
    joint.add_argument("--appearance-probs", required=True, metavar="H5")
    joint.add_argument("--motion-probs", required=True, metavar="H5")
    _model_options(joint)
    joint.set_defaults(handler=_infer_joint)

    masks = subparsers.add_parser("masks", help="DAVIS PNG masks (0/255) from a probability file")
    masks.add_argument("--probs", required=True, metavar="H5")
    masks.add_argument("--out", required=True, metavar="MASK_DIR")
    masks.add_argument("--threshold", type=float, default=0.5, help="foreground where probability > threshold")
    masks.add_argument(
        "--frames", metavar="FRAMES_DIR",
        help="the sequence's frame folder: masks are written at its source's native size (bilinear "
        "upsampling of the probabilities, then the threshold); default: the probabilities' own size",
    )
    masks.set_defaults(handler=_masks)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint (.pt)")
    parser.add_argument("--out", required=True, metavar="PROBS_H5")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads")


def _setup(args: argparse.Namespace) -> None:
    from fusionseg.errors import ConfigError

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: must be at least 1 (got {args.batch_size})")
    set_threads(args.threads)


def _infer_appearance(args: argparse.Namespace) -> None:
    from fusionseg.datasets.layout import Sequence
    from fusionseg.infer.run import infer_stream

    _setup(args)
    frames = Sequence.from_frames_dir(args.frames).frame_paths()
    infer_stream(args.model, "appearance", frames, args.out, args.batch_size, args.device)


def _infer_motion(args: argparse.Namespace) -> None:
    from fusionseg.datasets.layout import numbered_images
    from fusionseg.infer.run import infer_stream

    _setup(args)
    infer_stream(args.model, "motion", numbered_images(args.flow_rgb, "flow image"), args.out, args.batch_size, args.device)


def _infer_joint(args: argparse.Namespace) -> None:
    from fusionseg.infer.run import infer_joint

    _setup(args)
    infer_joint(args.model, args.appearance_probs, args.motion_probs, args.out, args.batch_size, args.device)


def _masks(args: argparse.Namespace) -> None:
    from fusionseg.errors import ConfigError
    from fusionseg.infer.masks import fitted_size, write_masks
    from fusionseg.infer.probs import probs_shape

    if not 0 <= args.threshold <= 1:
        raise ConfigError(f"--threshold: must be in [0, 1] (got {args.threshold})")
    size = fitted_size(args.frames, probs_shape(args.probs), args.probs) if args.frames else None
    count = write_masks(args.probs, args.out, args.threshold, size)
    print(f"{args.out}: {count} mask(s)")
