"""`fusionseg bootstrap`: pseudo labels for the motion stream from weakly labelled video."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bootstrap",
        help="filter appearance predictions inside weak boxes into pseudo labels, written as HDF5 shards",
    )
    parser.add_argument("--frames", nargs="+", required=True, type=Path, help="frame folders <root>/JPEGImages/480p/<seq>")
    parser.add_argument("--probs", nargs="+", required=True, type=Path, help="appearance probability files, aligned with --frames")
    parser.add_argument("--flow-rgb", nargs="+", required=True, type=Path, help="colour-coded flow folders, aligned with --frames")
    parser.add_argument("--out-dir", required=True, type=Path, help="writes shards/, manifest.csv, funnel.csv, quality.csv")
    parser.add_argument("--params", help="the bootstrap config section as JSON (defaults from the schema)")
    parser.set_defaults(handler=_bootstrap)


def _bootstrap(args: argparse.Namespace) -> None:
    from fusionseg.bootstrap.run import SequenceInputs, run_bootstrap
    from fusionseg.config import section_params
    from fusionseg.errors import InputError

    params = section_params("bootstrap", args.params)
    if not len(args.frames) == len(args.probs) == len(args.flow_rgb):
        raise InputError(
            f"--frames ({len(args.frames)}), --probs ({len(args.probs)}) and --flow-rgb ({len(args.flow_rgb)}) "
            "must list the same sequences in the same order"
        )
    inputs = [SequenceInputs(*paths) for paths in zip(args.frames, args.probs, args.flow_rgb)]
    funnel = run_bootstrap(inputs, args.out_dir, params)
    total = funnel.iloc[-1]
    print(f"{args.out_dir}: kept {total['kept']} of {total['candidates']} candidate frames ({total['frames']} frames)")
