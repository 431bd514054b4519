"""`fusionseg score` and `fusionseg summarize`: usable on any mask results, not only this pipeline's."""

from __future__ import annotations

import argparse
from pathlib import Path

from fusionseg.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    score = subparsers.add_parser(
        "score",
        help="DAVIS J and F (mean, recall, decay) of mask folders against a DAVIS-layout ground truth",
        description="Scores PRED_ROOT/<seq>/<frame>.png (palette or grey, label > 0 is foreground) against "
        "DAVIS_ROOT/Annotations/480p/<seq>/ exactly as the official DAVIS toolkit does. Writes one row per "
        "sequence to --out and one row per frame beside it (<out>.frames.csv).",
    )
    score.add_argument("--pred", required=True, type=Path, metavar="PRED_ROOT")
    score.add_argument("--gt", required=True, type=Path, metavar="DAVIS_ROOT")
    score.add_argument("--sequences", help="comma-separated sequence names (default: all in DAVIS_ROOT)")
    score.add_argument(
        "--frames",
        choices=("inner", "all"),
        help="inner drops the first and last frame (DAVIS-2016 convention); default: the config's "
        "datasets.<dataset>.score_frames with --config, else inner",
    )
    score.add_argument("--config", type=Path, help="workflow config to take score_frames from")
    score.add_argument(
        "--protocol", choices=("unsupervised", "semi-supervised"), default="unsupervised",
        help="semi-supervised also leaves out the first annotated frame, whose mask the method was given",
    )
    score.add_argument(
        "--per-object", action="store_true",
        help="masks hold object ids (255 void): score each object of the first annotated frame on its own",
    )
    score.add_argument(
        "--gt-resolution", default="480p",
        help="ground-truth folder under Annotations/ (this pipeline's frame folders keep the native-size "
        "masks in 'source')",
    )
    score.add_argument("--out", required=True, type=Path, help="per-sequence CSV")
    score.add_argument("--threads", type=int, default=1, help="sequences scored in parallel")
    score.add_argument("--method", help="method name recorded in the table (default: PRED_ROOT's folder name)")
    score.add_argument("--dataset", help="dataset name recorded in the table (default: DAVIS_ROOT's folder name)")
    score.set_defaults(handler=run_score)

    summarize = subparsers.add_parser(
        "summarize",
        help="methods x datasets summary (paper layout) from per-sequence score tables",
        description="Averages per-sequence scores per method and dataset. --out gets the paper layout "
        "(rows Flow-Th, Flow-Sal, Ours-A, Ours-M, Ours-Joint; J&F / J / F / avg IoU per dataset); the "
        "long-form table with every statistic goes beside it (<out>.long.csv).",
    )
    summarize.add_argument("--scores", required=True, nargs="+", type=Path, metavar="CSV")
    summarize.add_argument("--out", required=True, type=Path)
    summarize.set_defaults(handler=run_summarize)


def run_score(args: argparse.Namespace) -> None:
    from fusionseg.io import atomic_file
    from fusionseg.metrics.scoring import frames_table_path, label_tables, score_root

    dataset = args.dataset or args.gt.resolve().name
    mode = args.frames or _configured_frames(args.config, dataset)
    sequences = [s.strip() for s in args.sequences.split(",") if s.strip()] if args.sequences else None
    per_sequence, per_frame = score_root(
        args.pred, args.gt, sequences, mode, args.threads,
        protocol=args.protocol, per_object=args.per_object, gt_resolution=args.gt_resolution,
    )
    method = args.method or args.pred.resolve().name
    per_sequence, per_frame = label_tables(per_sequence, per_frame, method, dataset, mode, args.protocol)
    with atomic_file(frames_table_path(args.out)) as tmp:
        per_frame.to_csv(tmp, index=False)
    with atomic_file(args.out) as tmp:
        per_sequence.to_csv(tmp, index=False)
    print(per_sequence[["sequence", "J_mean", "F_mean"]].to_string(index=False, float_format="%.3f"))


def run_summarize(args: argparse.Namespace) -> None:
    from fusionseg.io import atomic_file
    from fusionseg.metrics.summary import dataset_summary, paper_table, read_scores

    summary = dataset_summary(read_scores(args.scores))
    long_path = args.out.with_name(f"{args.out.stem}.long.csv")
    with atomic_file(long_path) as tmp:
        summary.to_csv(tmp, index=False)
    table = paper_table(summary)
    with atomic_file(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(table.to_string(index=False, float_format="%.3f"))


def _configured_frames(config_path: Path | None, dataset: str) -> str:
    if config_path is None:
        return "inner"
    from fusionseg.config import load_config

    datasets = load_config(config_path)["datasets"]
    if dataset not in datasets:
        raise ConfigError(f"{config_path}: datasets.{dataset}: not declared (pass --dataset or --frames)")
    return datasets[dataset]["score_frames"]
