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
import os
import signal
import sys

from fusionseg import __version__
from fusionseg.errors import FusionSegError
from fusionseg.signals import Terminated, signals_as_exceptions

# Pipeline order; it is also the order of the subcommands in --help.
STAGES = ("datasets", "flow", "models", "train", "infer", "tsn", "segflow", "bootstrap", "shards", "baselines", "metrics", "report", "segment", "bundles")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fusionseg",
        description="FusionSeg pipeline steps (the Snakemake rules call these; each is usable by hand).",
    )
    parser.add_argument("--version", action="version", version=f"fusionseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="<step>", required=True)
    subparsers.add_parser("validate-config", help="check a config file against the schema and its roles").add_argument(
        "config", help="a config file, or a run's out_dir (its config.effective.yaml: the config its results were made with)"
    )
    for stage in STAGES:
        name = f"fusionseg.{stage}.cli"
        if importlib.util.find_spec(f"fusionseg.{stage}") and importlib.util.find_spec(name):
            importlib.import_module(name).register(subparsers)
    return parser


def _validate_config(args: argparse.Namespace) -> None:
    from fusionseg.config import EFFECTIVE_CONFIG, ROLES, check_fusionseg_data, load_config, role_sequences, run_config_path
    from fusionseg.bundles.importing import check_models_config

    path = run_config_path(args.config) if os.path.isdir(args.config) else args.config
    config = load_config(path)
    check_models_config(config, str(path))
    check_fusionseg_data(config, str(path))
    print(f"{path}: valid")
    for role in ROLES:
        pairs = role_sequences(config, role)
        print(f"  {role}: {len(pairs)} sequence(s)")
    if os.path.basename(path) != EFFECTIVE_CONFIG:
        _compare_with_run(config)


def _compare_with_run(config: dict) -> None:
    """Whether the results already in the config's out_dir were made with its settings (what a run redoes)."""
    from fusionseg.config import EFFECTIVE_CONFIG, differences, load_config, result_config

    effective = os.path.join(config["out_dir"], EFFECTIVE_CONFIG)
    if not os.path.isfile(effective):
        return
    changed = differences(result_config(config), result_config(load_config(effective)))
    if changed:
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        at = f"{', '.join(changed[:5])}{more}"
        print(f"  {effective}: its results were made with other settings at {at}; a run redoes what they change")
    else:
        print(f"  {effective}: its results were made with these settings")


def main(argv: list[str] | None = None) -> int:
    """Run one step; what goes wrong prints one line (exit 2: bad input or config, 1: the machine,
    130: Ctrl-C, 143: terminated), and outputs under way are removed as the error unwinds."""
    # Before any step imports torch: idle OpenMP threads sleep instead of spinning, unless the caller
    # chose. On cores shared with other jobs spinning made training 2-3x and TV-L1 many-fold slower
    # (benchmarks/results/models.md, benchmarks/results/segment.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler = getattr(args, "handler", None) or (_validate_config if args.command == "validate-config" else None)
    failure = None
    try:
        with signals_as_exceptions():
            handler(args)
    except FusionSegError as exc:
        failure, status = f"error: {_one_line(str(exc))}", 2
    except OSError as exc:
        failure, status = f"error: {_describe_os_error(exc)}", 1
    except KeyboardInterrupt:
        failure, status = "interrupted (Ctrl-C)", 130
    except Terminated:
        failure, status = "terminated (SIGTERM)", 128 + signal.SIGTERM
    if failure:
        print(f"fusionseg {args.command}: {failure}", file=sys.stderr)
        return status
    return 0


def _describe_os_error(exc: OSError) -> str:
    """'<file>: <cause>' for a failure of the machine or the file system that no stage anticipated."""
    cause = os.strerror(exc.errno).lower() if exc.errno else _one_line(str(exc))
    return f"{os.fsdecode(exc.filename)}: {cause}" if exc.filename else cause


def _one_line(message: str) -> str:
    # A file name that is not UTF-8 (surrogate escapes) is shown escaped, whatever stream stderr is.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())
