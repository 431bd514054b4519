"""The settings of configs/davis-cpu.yaml that were chosen on its validation split, each against the
alternatives it was chosen over: every variant is the shipped config with one section changed, run by
the workflow itself up to the validation scores (5 held-out DAVIS-2016 train sequences at 240p:
flamingo, hockey, mallard-fly, motorbike, rollerblade); the benchmark sequences are never run here.

    python benchmarks/choices.py [--choice appearance|motion|tsn|anchors|flow ...] [--cores 2] [--work DIR]

Each variant runs in its own out_dir below --work (default output/choices) with `snakemake --cache`,
so that optical flow, which no variant changes (except the flow choice), is computed once
(SNAKEMAKE_OUTPUT_CACHE=<work>/cache). A variant already run is not run again (Snakemake: nothing to
do). Writes benchmarks/results/choices.md and choices.csv: validation J&F, J and F of each variant's
methods, and the winner of each choice.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "davis-cpu.yaml"
RESULTS = REPO / "benchmarks" / "results"


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    # config section -> keys that replace the shipped config's (None: the shipped config itself)
    changes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    """Variants compared on `method`'s validation J&F; `methods` are the rows scored."""

    name: str
    question: str
    method: str
    methods: tuple[str, ...]
    variants: tuple[Variant, ...]


SHIPPED = "shipped"
CHOICES = {
    "appearance": Choice(
        "appearance",
        "Appearance stream: U²-Netp (DUTS) fine-tuned, or the saliency network as it is (row Saliency), or "
        "the paper's architecture on ImageNet EfficientNet-Lite0 (stride 8, four atrous classifiers)",
        "appearance",
        ("saliency", "appearance"),
        (
            Variant(SHIPPED, "U²-Netp (DUTS) fine-tuned on appearance_train (the shipped config)"),
            Variant(
                "efficientnet",
                "EfficientNet-Lite0 (ImageNet), SGD, as before this change",
                {"appearance": {"backbone": "efficientnet_lite0", "weights": "imagenet", "optimizer": "sgd",
                                "lr": 0.003, "iterations": 1500}},
            ),
        ),
    ),
    "motion": Choice(
        "motion",
        "Motion stream initialisation: U²-Netp (DUTS, full resolution) or ImageNet EfficientNet-Lite0 (stride 8)",
        "joint",
        ("motion", "joint"),
        (
            Variant(SHIPPED, "the shipped config"),
            Variant(
                "motion-efficientnet",
                "motion stream on ImageNet EfficientNet-Lite0, SGD",
                {"motion": {"backbone": "efficientnet_lite0", "weights": "imagenet", "optimizer": "sgd", "lr": 0.003}},
            ),
            Variant(
                "motion-u2netp",
                "motion stream on U²-Netp (DUTS), AdamW",
                {"motion": {"backbone": "u2netp", "weights": "duts", "optimizer": "adamw", "lr": 0.0001}},
            ),
        ),
    ),
    "tsn": Choice(
        "tsn",
        "TSN's key and value encoders: ImageNet EfficientNet-Lite0 or U²-Netp's encoder stages (DUTS)",
        "tsn",
        ("tsn", "joint-tsn"),
        (
            Variant(SHIPPED, "the shipped config"),
            Variant("tsn-efficientnet", "EfficientNet-Lite0 (ImageNet)", {"tsn": {"backbone": "efficientnet_lite0", "weights": "imagenet"}}),
            Variant("tsn-u2netp", "U²-Netp encoder stages (DUTS)", {"tsn": {"backbone": "u2netp", "weights": "duts"}}),
        ),
    ),
    "anchors": Choice(
        "anchors",
        "Ours-Joint+TSN: how many Ours-Joint frames seed TSN's memory (1: propagate one frame's mask)",
        "joint-tsn",
        ("joint", "joint-tsn"),
        tuple(Variant(f"anchors-{n}", f"{n} anchor frame(s)", {"tsn": {"anchors": n}}) for n in (1, 3, 5)),
    ),
}


def variant_config(variant: Variant, work: Path) -> dict:
    config = yaml.safe_load(CONFIG.read_text())
    config = copy.deepcopy(config)
    config["out_dir"] = str(work / variant.name)
    for section, keys in variant.changes.items():
        config[section] = {**config.get(section, {}), **keys}
    return config


def targets(config: dict, choice: Choice) -> list[str]:
    datasets = sorted({entry["dataset"] for entry in config["roles"]["validation"]})
    return [f"{config['out_dir']}/results/validation/scores/{m}/{d}.csv" for m in choice.methods for d in datasets]


def run_variant(variant: Variant, choice: Choice, work: Path, cores: int) -> list[Path]:
    config = variant_config(variant, work)
    path = work / f"{variant.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    wanted = targets(config, choice)
    env = {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(work / "cache")}
    (work / "cache").mkdir(exist_ok=True)
    command = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--cache", "--configfile", str(path), "--", *wanted]
    print(" ".join(command), flush=True)
    subprocess.run(command, cwd=REPO, env=env, check=True)
    return [Path(t) for t in wanted]


def collect(choice: Choice, variant: Variant, score_files: list[Path]) -> pd.DataFrame:
    from fusionseg.metrics.summary import read_scores

    scores = read_scores(score_files)
    table = scores.groupby("method")[["J_mean", "F_mean"]].mean()
    table["JF_mean"] = (table["J_mean"] + table["F_mean"]) / 2
    table = table.reset_index()
    table.insert(0, "variant", variant.name)
    table.insert(0, "choice", choice.name)
    table["description"] = variant.description
    return table


def write_results(rows: pd.DataFrame) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows.to_csv(RESULTS / "choices.csv", index=False)
    lines = [
        "# Settings chosen on the validation split (`python benchmarks/choices.py`)",
        "",
        "Validation split of configs/davis-cpu.yaml: 5 held-out DAVIS-2016 train sequences at 240p (flamingo, "
        "hockey, mallard-fly, motorbike, rollerblade), every frame but the first and last (inner), percent. Each "
        "variant is the shipped config with one section changed.",
    ]
    for name, group in rows.groupby("choice", sort=False):
        choice = CHOICES[name]
        lines += ["", f"## {choice.question}", "", f"Decided on {choice.method} J&F.", ""]
        shown = group[["variant", "description", "method", "JF_mean", "J_mean", "F_mean"]].copy()
        for column in ("JF_mean", "J_mean", "F_mean"):
            shown[column] = (100 * shown[column]).round(1)
        lines.append(shown.rename(columns={"JF_mean": "J&F", "J_mean": "J", "F_mean": "F"}).to_markdown(index=False))
        decisive = group[group["method"] == choice.method]
        if len(decisive):
            best = decisive.loc[decisive["JF_mean"].idxmax()]
            lines += ["", f"Best: **{best['variant']}** ({best['description']})."]
    (RESULTS / "choices.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--choice", nargs="+", choices=sorted(CHOICES), default=sorted(CHOICES))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--work", type=Path, default=REPO / "output" / "choices")
    args = parser.parse_args()
    previous = pd.read_csv(RESULTS / "choices.csv") if (RESULTS / "choices.csv").is_file() else pd.DataFrame()
    tables = []
    for name in args.choice:
        choice = CHOICES[name]
        for variant in choice.variants:
            tables.append(collect(choice, variant, run_variant(variant, choice, args.work.resolve(), args.cores)))
    rows = pd.concat(tables, ignore_index=True)
    if len(previous):
        rows = pd.concat([previous[~previous["choice"].isin(args.choice)], rows], ignore_index=True)
    write_results(rows)
    print(RESULTS / "choices.md")


if __name__ == "__main__":
    main()
