"""Subcommands train-tsn and infer-tsn."""

from __future__ import annotations

import argparse

from fusionseg.config import add_run_options, with_run_options
from fusionseg.devices import set_threads


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train-tsn", help="train TSN (semi-supervised two-stream network) on annotated video and image masks"
    )
    train.add_argument(
        "--frames", nargs="+", required=True, metavar="FRAMES_DIR",
        help="<root>/JPEGImages/480p/<seq> folders of annotated sequences (main training; their frames are also pre-training stills)",
    )  # fmt: skip
    train.add_argument(
        "--images", nargs="+", action="extend", default=[], metavar="MANIFEST",
        help="manifest.csv of image caches (fusionseg extract-images) for pre-training",
    )  # fmt: skip
    train.add_argument("--out", required=True, help="checkpoint to write (.pt); <out>.log.csv, <stem>.pretrain.pt beside it")
    train.add_argument("--params", default="{}", metavar="JSON", help="the config's tsn section as JSON (defaults filled)")
    train.add_argument("--threads", type=int, help="torch CPU threads")
    add_run_options(train, "tsn")
    train.set_defaults(handler=_train)

    infer = subparsers.add_parser(
        "infer-tsn", help="TSN probabilities for a sequence, from its first annotated mask or from another method's probabilities"
    )
    infer.add_argument("--model", required=True, help="TSN checkpoint (.pt)")
    infer.add_argument("--frames", required=True, metavar="FRAMES_DIR")
    infer.add_argument("--out", required=True, metavar="PROBS_H5")
    infer.add_argument(
        "--seed-probs", metavar="H5",
        help="start from these probabilities (fully automatic) instead of the first annotated mask (semi-supervised)",
    )  # fmt: skip
    infer.add_argument(
        "--seed-frame", default="auto", metavar="auto|K",
        help="with --seed-probs: the frame to start from; auto picks the most confident mask its neighbours agree with",
    )  # fmt: skip
    infer.add_argument(
        "--anchors", type=int, default=1, metavar="N",
        help="with --seed-probs and --seed-frame auto: start from the N most trustworthy frames together "
        "(spread over the video) instead of propagating one frame's mask",
    )  # fmt: skip
    infer.add_argument("--routing-out", metavar="H5", help="also write the routing map W per frame (both streams only)")
    infer.add_argument("--top-k", type=int, metavar="K", help="memory positions a query position reads (default: the model's)")
    infer.add_argument("--mem-every", type=int, metavar="N", help="every N-th frame joins the memory (default: the model's)")
    infer.add_argument("--threads", type=int, help="torch CPU threads")
    infer.add_argument("--device", choices=["auto", "cpu", "cuda"], help="overrides the device the model was trained with")
    infer.set_defaults(handler=_infer)


def _train(args: argparse.Namespace) -> None:
    from fusionseg.tsn.train import train_tsn, tsn_params

    params = with_run_options("tsn", tsn_params(args.params), args)
    set_threads(args.threads)
    train_tsn(args.frames, args.images, params, args.out)


def _infer(args: argparse.Namespace) -> None:
    from fusionseg.errors import ConfigError, InputError
    from fusionseg.tsn.infer import infer_tsn

    if args.seed_frame != "auto" and args.seed_probs is None:
        raise InputError("--seed-frame: only with --seed-probs (semi-supervised runs start at the first annotated frame)")
    if args.anchors < 1:
        raise ConfigError(f"--anchors: must be at least 1 (got {args.anchors})")
    if args.anchors > 1 and (args.seed_probs is None or args.seed_frame != "auto"):
        raise InputError("--anchors: only with --seed-probs and --seed-frame auto")
    for flag, value in (("--top-k", args.top_k), ("--mem-every", args.mem_every)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag}: must be at least 1 (got {value})")
    set_threads(args.threads)
    seeds = infer_tsn(
        args.model, args.frames, args.out, args.seed_probs, args.seed_frame, args.routing_out, args.device,
        top_k=args.top_k, mem_every=args.mem_every, anchors=args.anchors,
    )  # fmt: skip
    objects = len({i for seed in seeds for i in seed.object_ids})
    frames = ", ".join(str(seed.frame) for seed in seeds)
    print(f"{args.out}: {objects} object(s) from frame(s) {frames} ({seeds[0].source})")
