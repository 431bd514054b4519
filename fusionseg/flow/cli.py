"""Subcommands of the flow stage: compute-flow, encode-flow (sequences) and flow, flow-to-rgb (pairs)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from fusionseg.devices import DEVICES, set_threads
from fusionseg.flow.options import METHODS, NORMALIZATIONS

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    compute = subparsers.add_parser(
        "compute-flow", help="raw optical flow of a sequence (N flows for N frames) into one HDF5 file"
    )
    compute.add_argument("--frames", required=True, type=Path, help="frame folder <root>/JPEGImages/480p/<seq>")
    compute.add_argument("--out", required=True, type=Path, help="output .h5 (dataset 'flow', (N,H,W,2) float32)")
    _add_method_arguments(compute)
    compute.add_argument("--batch-size", type=int, default=4, help="frame pairs solved together (tvl1)")
    compute.set_defaults(handler=_compute_flow)

    encode = subparsers.add_parser("encode-flow", help="Middlebury colour-coded flow images of a sequence")
    encode.add_argument("--flow", required=True, type=Path, help="the sequence's .h5 from compute-flow")
    encode.add_argument("--out", required=True, type=Path, help="output folder of 00000.png ... (RGB)")
    _add_colour_arguments(encode)
    encode.set_defaults(handler=_encode_flow)

    pair = subparsers.add_parser("flow", help="optical flow between two images, as a .flo file")
    pair.add_argument("image0", type=Path)
    pair.add_argument("image1", type=Path)
    pair.add_argument("--out", required=True, type=Path, help="output .flo (or .png for KITTI 16-bit format)")
    _add_method_arguments(pair)
    pair.set_defaults(handler=_pair_flow)

    to_rgb = subparsers.add_parser("flow-to-rgb", help="colour-code a .flo (or KITTI .png) flow file")
    to_rgb.add_argument("flow", type=Path)
    to_rgb.add_argument("--out", required=True, type=Path, help="output RGB image (.png)")
    to_rgb.add_argument("--max-flow", type=float, help="magnitude of full saturation (default: the field's maximum)")
    to_rgb.set_defaults(handler=_flow_to_rgb)


def _add_method_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", choices=METHODS, default="tvl1")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="tvl1 only; OpenCV methods run on the CPU")
    parser.add_argument("--params", help="JSON of the method's config section, e.g. '{\"warps\": 5}'")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and OpenCV (default: their own choice)")


def _add_colour_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--normalization", choices=NORMALIZATIONS, default="per_frame")
    parser.add_argument("--max-flow", type=float, help="magnitude of full saturation when normalization is fixed")


def _compute_flow(args: argparse.Namespace) -> None:
    from fusionseg.flow.sequence import compute_sequence_flow

    set_threads(args.threads)
    compute_sequence_flow(args.frames, args.out, args.method, args.params, args.device, args.batch_size)
    log.info("wrote %s", args.out)


def _encode_flow(args: argparse.Namespace) -> None:
    from fusionseg.flow.sequence import encode_flow

    count = encode_flow(args.flow, args.out, args.normalization, args.max_flow)
    log.info("wrote %d images to %s", count, args.out)


def _pair_flow(args: argparse.Namespace) -> None:
    from fusionseg.errors import InputError
    from fusionseg.io.flo import write_flo, write_kitti_flow
    from fusionseg.flow.methods import make_backend, to_grey
    from fusionseg.io import read_image

    set_threads(args.threads)
    image0, image1 = (to_grey(read_image(p)) for p in (args.image0, args.image1))
    if image0.shape != image1.shape:
        raise InputError(
            f"{args.image1}: image is {image1.shape[1]}x{image1.shape[0]}, but {args.image0} is {image0.shape[1]}x{image0.shape[0]}"
        )
    flow = make_backend(args.method, args.params, args.device)([image0], [image1])[0]
    (write_kitti_flow if args.out.suffix.lower() == ".png" else write_flo)(args.out, flow)
    log.info("wrote %s", args.out)


def _flow_to_rgb(args: argparse.Namespace) -> None:
    from fusionseg.errors import ConfigError
    from fusionseg.flow.colour import flow_to_rgb
    from fusionseg.io.flo import read_flow_file
    from fusionseg.io import atomic_file, write_image

    if args.max_flow is not None and not args.max_flow > 0:
        raise ConfigError(f"--max-flow: must be positive, got {args.max_flow}")
    if args.out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ConfigError(f"--out {args.out}: an image name ending in .png or .jpg")
    rgb = flow_to_rgb(read_flow_file(args.flow), args.max_flow)
    with atomic_file(args.out) as tmp:
        write_image(tmp, rgb, image_format=args.out.suffix)
    log.info("wrote %s", args.out)
