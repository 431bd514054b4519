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
    flow_th.set_defaults(handler=run_flow_th)

    flow_sal = subparsers.add_parser(
        "flow-sal",
        help="Flow-Sal baseline: spectral-residual saliency of the flow image > its mean -> DAVIS PNG masks",
    )
    flow_sal.add_argument("--flow-rgb", required=True, type=Path, metavar="DIR", help="colour-coded flow images")
    flow_sal.add_argument("--out", required=True, type=Path, metavar="MASK_DIR")
    flow_sal.set_defaults(handler=run_flow_sal)


def run_flow_th(args: argparse.Namespace) -> None:
    from fusionseg.baselines.flow_masks import write_flow_threshold_masks

    count = write_flow_threshold_masks(args.flow, args.out)
    print(f"{args.out}: {count} Flow-Th masks")


def run_flow_sal(args: argparse.Namespace) -> None:
    from fusionseg.baselines.flow_masks import write_flow_saliency_masks

    count = write_flow_saliency_masks(args.flow_rgb, args.out)
    print(f"{args.out}: {count} Flow-Sal masks")
