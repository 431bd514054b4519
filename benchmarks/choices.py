"""The settings of configs/davis-cpu.yaml that were chosen on its validation split, each against the
alternatives it was chosen over: every variant is the shipped config with one section changed, run by
the workflow itself up to the validation scores (5 held-out DAVIS-2016 train sequences at 240p:
flamingo, hockey, mallard-fly, motorbike, rollerblade); the benchmark sequences are never run here.

    python benchmarks/choices.py [--choice motion tsn flow anchors appearance untouched] [--variant NAME ...]
                                 [--cores 2] [--work DIR] [--shipped-run output/davis-cpu]

The variant that is the shipped config is read from a finished run of it (--shipped-run: its
results/validation/scores). Each choice runs its other variants one after the other in its own out_dir
(<work>/runs/<choice>), which starts as a copy of the shipped run whose Snakemake records are written
by a `--touch` run of the shipped config: a variant then reruns only the steps its section changes.
Each variant's score files are kept in <work>/variants/<variant>/ with its config, and a variant whose
kept config equals its config now is not run again. Writes benchmarks/results/choices.md and
choices.csv: validation J&F, J and F of each variant's methods, and the best variant of each choice.
With --variant only the named variants run; the other variants of their choices keep their rows of
choices.csv.
"""

from __future__ import annotations

import argparse
import os
import shutil
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


CHOICES = {
    "motion": Choice(
        "motion",
        "Motion stream initialisation: U²-Netp (DUTS, full resolution) or ImageNet EfficientNet-Lite0 (stride 8)",
        "joint",
        ("motion", "joint"),
        (
            Variant(
                "motion-efficientnet",
                "motion stream on ImageNet EfficientNet-Lite0, SGD 3e-3, 800 iterations (~1.2 s each)",
                {"motion": {"backbone": "efficientnet_lite0", "weights": "imagenet", "optimizer": "sgd", "lr": 0.003,
                            "iterations": 800}},
            ),
            Variant(
                "motion-u2netp",
                "motion stream on U²-Netp (DUTS), all of it trained, AdamW 1e-4, 300 iterations (~6 s each: "
                "twice the EfficientNet's training time)",
                {"motion": {"backbone": "u2netp", "weights": "duts", "optimizer": "adamw", "lr": 0.0001,
                            "iterations": 300}},
            ),
            Variant(
                "motion-u2netp-600",
                "the same, 600 iterations (an hour)",
                {"motion": {"backbone": "u2netp", "weights": "duts", "optimizer": "adamw", "lr": 0.0001,
                            "iterations": 600}},
            ),
        ),
    ),
    "flow": Choice(
        "flow",
        "Optical flow: TV-L1 (ours) or OpenCV's DIS (medium preset, tens of times faster): the motion stream, "
        "the bootstrap's flow test and the fusion all see it",
        "joint",
        ("motion", "joint"),
        (
            Variant("flow-tvl1", "TV-L1 (ours, PyTorch)", {"flow": {"method": "tvl1"}}),
            Variant("flow-dis", "OpenCV DIS, medium preset", {"flow": {"method": "dis"}}),
        ),
    ),
    "tsn": Choice(
        "tsn",
        "TSN's key and value encoders: ImageNet EfficientNet-Lite0 or U²-Netp's encoder stages (DUTS)",
        "tsn",
        ("tsn", "joint-tsn"),
        (
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
    "appearance": Choice(
        "appearance",
        "Appearance stream on U²-Netp (DUTS): how much of it to fine-tune (the Saliency row is the network "
        "untouched, as the background remover runs it)",
        "appearance",
        ("saliency", "appearance"),
        (
            Variant(
                "appearance-all-native",
                "everything trained, AdamW 1e-4, 300 iterations, 256 crops at the frames' size",
                {"appearance": {"iterations": 300, "crop_size": 256, "lr": 0.0001, "freeze_stages": 0,
                                "input_size": None, "resized_crops": False}},
            ),
            Variant(
                "appearance-all-320",
                "everything trained, AdamW 3e-5, 200 iterations, 320 x 320 resized crops",
                {"appearance": {"iterations": 200, "crop_size": 320, "lr": 3.0e-05, "freeze_stages": 0,
                                "input_size": 320, "resized_crops": True}},
            ),
            Variant(
                "appearance-sides-320",
                "side outputs and head only (freeze_stages 11), AdamW 1e-3, 200 iterations, 320 x 320 resized crops",
                {"appearance": {"iterations": 200, "crop_size": 320, "lr": 0.001, "freeze_stages": 11,
                                "input_size": 320, "resized_crops": True}},
            ),
        ),
    ),
    "untouched": Choice(
        "untouched",
        "Appearance stream fine-tuned or untouched, end to end: the bootstrap, the motion stream and the "
        "fusion retrained on its output (benchmarks/untouched_appearance.py refits only the fusion)",
        "joint",
        ("appearance", "motion", "joint"),
        (
            Variant("appearance-finetuned", "side outputs and head fine-tuned, 200 iterations",
                    {"appearance": {"iterations": 200}}),
            Variant("appearance-untouched", "no fine-tuning (iterations: 0): the DUTS U²-Netp as shipped, its fused output",
                    {"appearance": {"iterations": 0}}),
        ),
    ),
}


def variant_config(variant: Variant, out_dir: Path) -> dict:
    config = yaml.safe_load(CONFIG.read_text())
    config["out_dir"] = str(out_dir)
    for section, keys in variant.changes.items():
        config[section] = {**config.get(section, {}), **keys}
    return config


def is_shipped(variant: Variant) -> bool:
    """Whether the variant's changes are what configs/davis-cpu.yaml already says."""
    from fusionseg.config import load_config

    shipped = load_config(CONFIG)
    return all(shipped[section].get(key) == value for section, keys in variant.changes.items() for key, value in keys.items())


def targets(config: dict, choice: Choice) -> list[Path]:
    datasets = sorted({entry["dataset"] for entry in config["roles"]["validation"]})
    return [Path(config["out_dir"]) / "results" / "validation" / "scores" / m / f"{d}.csv" for m in choice.methods for d in datasets]


def snakemake(config: dict, config_path: Path, wanted: list[Path], cores: int, *options: str) -> None:
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "snakemake", "--cores", str(cores), *options, "--configfile", str(config_path),
               "--", *map(str, wanted)]  # fmt: skip
    print(" ".join(command), flush=True)
    subprocess.run(command, cwd=REPO, check=True)


def seeded_run(choice: Choice, work: Path, shipped_run: Path, cores: int) -> Path:
    """The choice's out_dir: a copy of the shipped run (made once), with Snakemake's records of how each
    file was made written by touching the shipped config's jobs, so that a variant's changed params
    rerun its steps and nothing else."""
    run = work / "runs" / choice.name
    if run.is_dir():
        return run
    copying = run.with_name(run.name + ".copying")
    shutil.rmtree(copying, ignore_errors=True)  # a copy this script left unfinished
    shutil.copytree(shipped_run, copying, symlinks=True)  # copy2: modification times kept
    copying.rename(run)
    shipped = variant_config(Variant("shipped", "the shipped config"), run)
    snakemake(shipped, work / "shipped.yaml", targets(shipped, choice), cores, "--touch", "--forceall")
    return run


def variant_scores(variant: Variant, choice: Choice, work: Path, shipped_run: Path, cores: int) -> list[Path]:
    """The variant's validation score files: kept ones of the same config, the shipped run's, or from
    a run now."""
    kept = work / "variants" / variant.name
    config = variant_config(variant, work / "runs" / choice.name)
    text = yaml.safe_dump(config, sort_keys=False)
    if (kept / "config.yaml").is_file() and (kept / "config.yaml").read_text() == text:
        return sorted(kept.glob("*.csv"))
    shipped = targets(variant_config(variant, shipped_run), choice)
    if is_shipped(variant) and all(path.is_file() for path in shipped):
        return shipped
    seeded_run(choice, work, shipped_run, cores)
    wanted = targets(config, choice)
    snakemake(config, work / "config.yaml", wanted, cores)
    kept.mkdir(parents=True, exist_ok=True)
    for target in wanted:
        shutil.copyfile(target, kept / f"{target.parent.name}.{target.name}")
    (kept / "config.yaml").write_text(text)
    return sorted(kept.glob("*.csv"))


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
    # Marked when written, not when run: the shipped config may have adopted a variant since.
    shipped = {variant.name for choice in CHOICES.values() for variant in choice.variants if is_shipped(variant)}
    for name, group in rows.groupby("choice", sort=False):
        choice = CHOICES[name]
        lines += ["", f"## {choice.question}", "", f"Decided on {choice.method} J&F.", ""]
        shown = group[["variant", "description", "method", "JF_mean", "J_mean", "F_mean"]].copy()
        shown["description"] += shown["variant"].map(lambda variant: " (shipped)" if variant in shipped else "")
        for column in ("JF_mean", "J_mean", "F_mean"):
            shown[column] = (100 * shown[column]).round(1)
        lines.append(shown.rename(columns={"JF_mean": "J&F", "J_mean": "J", "F_mean": "F"}).to_markdown(index=False))
        decisive = group[group["method"] == choice.method]
        if len(decisive):
            best = shown.loc[decisive["JF_mean"].idxmax()]
            lines += ["", f"Best: **{best['variant']}** ({best['description']})."]
    (RESULTS / "choices.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--choice", nargs="+", choices=list(CHOICES), default=list(CHOICES))
    parser.add_argument("--variant", nargs="+", metavar="NAME", help="run only these variants of the choices")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--work", type=Path, default=REPO / "output" / "choices")
    parser.add_argument("--shipped-run", type=Path, default=REPO / "output" / "davis-cpu", help="a finished run of configs/davis-cpu.yaml")
    args = parser.parse_args()
    os.chdir(REPO)  # the config's dataset roots are relative to the repository
    previous = pd.read_csv(RESULTS / "choices.csv") if (RESULTS / "choices.csv").is_file() else pd.DataFrame()
    runs = [(CHOICES[name], v) for name in args.choice for v in CHOICES[name].variants if not args.variant or v.name in args.variant]
    unknown = set(args.variant or ()) - {variant.name for _, variant in runs}
    if unknown:
        parser.error(f"--variant: {', '.join(sorted(unknown))} not a variant of {', '.join(args.choice)}")
    tables = [previous[~previous["variant"].isin([v.name for _, v in runs])]] if len(previous) else []
    for choice, variant in runs:
        scores = variant_scores(variant, choice, args.work.resolve(), args.shipped_run.resolve(), args.cores)
        tables.append(collect(choice, variant, scores))
    rows = pd.concat(tables, ignore_index=True)
    order = {name: i for i, name in enumerate(CHOICES)}
    rows = rows.sort_values("choice", key=lambda c: c.map(order), kind="stable")
    write_results(rows)
    print(RESULTS / "choices.md")


if __name__ == "__main__":
    main()
