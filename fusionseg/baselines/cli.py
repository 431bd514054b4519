"""`fusionseg flow-th`, `fusionseg flow-sal` and `fusionseg saliency`: the baselines (flow-only, as in the paper, and a per-frame salient-object network)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fusionseg.devices import DEVICES, set_threads


def register(subparsers: argparse._SubParsersAction) -> None:
    flow_th = subparsers.add_parser(
        "flow-th",
        help="Flow-Th baseline: flow magnitude > mean + 1 std per frame -> DAVIS PNG masks",
    )
    flow_th.add_argument("--flow", required=True, type=Path, metavar="SEQ.h5", help="raw flow HDF5 (dataset 'flow')")
    flow_th.add_argument("--out", required=True, type=Path, metavar="MASK_DIR")
    _frames_option(flow_th)
    flow_th.set_defaults(handler=run_flow_th)

    flow_sal = subparsers.add_parser(
        "flow-sal",
        help="Flow-Sal baseline: spectral-residual saliency of the flow image > its mean -> DAVIS PNG masks",
    )
    flow_sal.add_argument("--flow-rgb", required=True, type=Path, metavar="DIR", help="colour-coded flow images")
    flow_sal.add_argument("--out", required=True, type=Path, metavar="MASK_DIR")
    _frames_option(flow_sal)
    flow_sal.set_defaults(handler=run_flow_sal)

    saliency = subparsers.add_parser(
        "saliency",
        help="Saliency baseline: U²-Netp (DUTS) per frame, as the rembg background remover runs it -> probabilities",
    )
    saliency.add_argument("--frames", required=True, type=Path, metavar="FRAMES_DIR", help="the sequence's frame folder")
    saliency.add_argument("--out", required=True, type=Path, metavar="PROBS_H5")
    saliency.add_argument("--batch-size", type=int, default=4)
    saliency.add_argument("--device", choices=DEVICES, default="auto")
    saliency.add_argument("--threads", type=int, help="torch CPU threads")
    saliency.set_defaults(handler=run_saliency)


def _frames_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--frames", type=Path, metavar="FRAMES_DIR",
        help="the sequence's frame folder: masks are written at its source's native size",
    )


def run_flow_th(args: argparse.Namespace) -> None:
    from fusionseg.baselines.flow_masks import write_flow_threshold_masks
    from fusionseg.flow.sequence import open_flow
    from fusionseg.infer.masks import fitted_size

    size = None
    if args.frames:
        with open_flow(args.flow) as flow:
            size = fitted_size(args.frames, flow.shape[:3], args.flow, "flow")
    count = write_flow_threshold_masks(args.flow, args.out, size)
    print(f"{args.out}: {count} Flow-Th masks")


def run_flow_sal(args: argparse.Namespace) -> None:
    from fusionseg.baselines.flow_masks import write_flow_saliency_masks
    from fusionseg.datasets.layout import numbered_images
    from fusionseg.infer.masks import fitted_size
    from fusionseg.io import read_image

    size = None
    if args.frames:
        images = numbered_images(args.flow_rgb, "flow image")
        shape = (len(images), *read_image(images[0]).shape[:2])
        size = fitted_size(args.frames, shape, args.flow_rgb, "flow images")
    count = write_flow_saliency_masks(args.flow_rgb, args.out, size)
    print(f"{args.out}: {count} Flow-Sal masks")


def run_saliency(args: argparse.Namespace) -> None:
    from fusionseg.baselines.saliency import write_saliency
    from fusionseg.datasets.layout import Sequence
    from fusionseg.errors import ConfigError

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: must be at least 1 (got {args.batch_size})")
    set_threads(args.threads)
    write_saliency(Sequence.from_frames_dir(args.frames).frame_paths(), args.out, args.batch_size, args.device)
    print(f"{args.out}: Saliency probabilities")
