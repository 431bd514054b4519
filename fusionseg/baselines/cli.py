"""`fusionseg flow-th` and `fusionseg flow-sal`: the paper's flow-only baselines as mask folders."""

from __future__ import annotations

import argparse
from pathlib import Path


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


def _frames_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--frames", type=Path, metavar="FRAMES_DIR",
        help="the sequence's frame folder: masks are written at its source's native size",
    )


def _target_size(args: argparse.Namespace) -> tuple[int, int] | None:
    from fusionseg.infer.masks import source_size

    return source_size(args.frames) if args.frames else None


def run_flow_th(args: argparse.Namespace) -> None:
    from fusionseg.baselines.flow_masks import write_flow_threshold_masks

    count = write_flow_threshold_masks(args.flow, args.out, _target_size(args))
    print(f"{args.out}: {count} Flow-Th masks")


def run_flow_sal(args: argparse.Namespace) -> None:
    from fusionseg.baselines.flow_masks import write_flow_saliency_masks

    count = write_flow_saliency_masks(args.flow_rgb, args.out, _target_size(args))
    print(f"{args.out}: {count} Flow-Sal masks")
