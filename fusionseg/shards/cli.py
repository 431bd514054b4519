"""`fusionseg verify-shards MANIFEST`: check every shard's checksum, sample count and arrays."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("verify-shards", help="check the shards listed in a manifest (SHA-256, sample count, every array's checksums)")
    parser.add_argument("manifest", help="manifest.csv written by `fusionseg bootstrap`")
    parser.set_defaults(handler=_verify_shards)


def _verify_shards(args: argparse.Namespace) -> None:
    from fusionseg.shards.verify import verify_manifest

    summary = verify_manifest(args.manifest)
    print(f"{args.manifest}: {len(summary)} shard(s), {int(summary['samples'].sum())} sample(s), all checksums match")
