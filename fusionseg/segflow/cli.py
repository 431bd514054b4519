"""Subcommands train-segflow and infer-segflow."""

from __future__ import annotations

import argparse

from fusionseg.config import add_run_options, with_run_options
from fusionseg.devices import DEVICES, set_threads


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train-segflow", help="train SegFlow (segmentation + optical-flow branches exchanging features)"
    )
    train.add_argument(
        "--frames", nargs="+", required=True, metavar="FRAMES_DIR",
        help="annotated sequences <root>/JPEGImages/480p/<seq>: their annotated frames with the next frame",
    )
    train.add_argument(
        "--flow-frames", nargs="+", required=True, metavar="FRAMES_DIR",
        help="sequences with ground-truth flow in <root>/Flow/<seq>/ (fusionseg synth)",
    )
    train.add_argument(
        "--flow-pairs", nargs="+", default=[], metavar="DIR",
        help="folders of real ground-truth pairs to train on, FlyingChairs naming: NAME-img0.*, NAME-img1.*, NAME-gt.flo",
    )
    train.add_argument("--out", required=True, help="checkpoint to write (.pt); <out>.log.csv and <out>.resume.pt beside it")
    train.add_argument("--params", default="{}", metavar="JSON", help="the config's segflow section as JSON (defaults filled)")
    train.add_argument("--threads", type=int, help="torch CPU threads")
    add_run_options(train, "segflow")
    train.set_defaults(handler=_train)

    infer = subparsers.add_parser("infer-segflow", help="SegFlow foreground probabilities (and flow) for a sequence")
    infer.add_argument("--model", required=True, help="segflow.pt from train-segflow")
    infer.add_argument("--frames", required=True, metavar="FRAMES_DIR")
    infer.add_argument("--out", required=True, metavar="PROBS_H5", help="foreground probabilities (N, H, W)")
    infer.add_argument("--flow-out", metavar="FLOW_H5", help="also write the flow branch's flow (compute-flow format)")
    infer.add_argument(
        "--online-iterations", type=int, default=0, metavar="N",
        help="semi-supervised mode: first fine-tune a copy of the model for N iterations on the sequence's first annotated frame",
    )
    infer.add_argument("--online-lr", type=float, metavar="LR", help="online fine-tuning learning rate (default: the model's segflow.online_lr)")
    infer.add_argument("--batch-size", type=int, default=2, help="frame pairs per forward pass")
    infer.add_argument("--device", choices=DEVICES, default="auto")
    infer.add_argument("--threads", type=int, help="torch CPU threads")
    infer.set_defaults(handler=_infer)


def _train(args: argparse.Namespace) -> None:
    from fusionseg.config import section_params
    from fusionseg.datasets.layout import Sequence
    from fusionseg.segflow.data import AnnotatedPairs, FlowClips, FlowPairFolders
    from fusionseg.segflow.train import train_segflow
    from fusionseg.train.data import ConcatSources
    from fusionseg.train.loop import data_identity

    params = with_run_options("segflow", section_params("segflow", args.params), args)
    set_threads(args.threads)
    sources = [FlowClips(args.flow_frames), FlowPairFolders(args.flow_pairs)]
    flow = ConcatSources(sources, "flow training data (--flow-frames and/or --flow-pairs)")
    # Digests of every input: frames, masks, ground-truth flow, pair folders.
    frames = [*args.frames, *args.flow_frames]
    identity = data_identity(frames, [*(Sequence.from_frames_dir(d).flow_dir for d in frames), *args.flow_pairs])
    train_segflow(AnnotatedPairs(args.frames), flow, params, args.out, identity)


def _infer(args: argparse.Namespace) -> None:
    from fusionseg.errors import ConfigError
    from fusionseg.segflow.infer import infer_segflow

    if args.online_iterations < 0:
        raise ConfigError(f"--online-iterations: must be 0 or more, got {args.online_iterations}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: must be at least 1, got {args.batch_size}")
    if args.online_lr is not None and args.online_lr <= 0:
        raise ConfigError(f"--online-lr: must be positive, got {args.online_lr}")
    set_threads(args.threads)
    infer_segflow(
        args.model, args.frames, args.out, args.flow_out, args.online_iterations, args.batch_size, args.device, args.online_lr
    )
