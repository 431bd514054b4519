"""The `fusionseg` command: one subcommand per pipeline step.

Each stage package (``fusionseg.<stage>``) that has a ``cli`` module contributes its subcommands
through ``register(subparsers)``; handlers import their heavy dependencies (torch, h5py) lazily so
that `fusionseg --help` stays fast. Errors the user can fix print one line naming the file or key.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

from fusionseg import __version__
from fusionseg.errors import FusionSegError

# Pipeline order; it is also the order of the subcommands in --help.
STAGES = ("datasets", "flow", "models", "train", "infer", "tsn", "segflow", "bootstrap", "shards", "baselines", "metrics", "report", "segment")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fusionseg",
        description="FusionSeg pipeline steps (the Snakemake rules call these; each is usable by hand).",
    )
    parser.add_argument("--version", action="version", version=f"fusionseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="<step>", required=True)
    subparsers.add_parser("validate-config", help="check a config file against the schema and its roles").add_argument(
        "config"
    )
    for stage in STAGES:
        name = f"fusionseg.{stage}.cli"
        if importlib.util.find_spec(f"fusionseg.{stage}") and importlib.util.find_spec(name):
            importlib.import_module(name).register(subparsers)
    return parser


def _validate_config(args: argparse.Namespace) -> None:
    from fusionseg.config import load_config, role_sequences, ROLES
    from fusionseg.models.bundle import check_models_config

    config = load_config(args.config)
    check_models_config(config, str(args.config))
    print(f"{args.config}: valid")
    for role in ROLES:
        pairs = role_sequences(config, role)
        print(f"  {role}: {len(pairs)} sequence(s)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler = getattr(args, "handler", None) or (_validate_config if args.command == "validate-config" else None)
    try:
        handler(args)
    except FusionSegError as exc:
        print(f"fusionseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0
