"""Shared by every stage: the checked config, the sequences each step needs, paths and resources."""

import json
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

from fusionseg.config import (
    EFFECTIVE_CONFIG,
    ROLES,
    RUN_SETTINGS,
    SCORED_ROLES,
    check_config,
    check_fusionseg_data,
    result_config,
    result_settings,
    role_sequences,
)
from fusionseg.errors import ConfigError
from fusionseg.datasets.catalog import IMAGE_LAYOUTS, NAME_PATTERN
from fusionseg.bundles.importing import check_models_config

# Schema defaults filled in and roles checked (datasets declared, no unintended overlap) before any job;
# models from elsewhere (a bundle, or three checkpoints) mean no training role and the bundle's flow
# convention; FusionSeg trained here has data for every training step. A bad key is one line naming the
# config file and the key; raised again here so that Snakemake shows that line and this one, not
# fusionseg's call stack.
CONFIG_FILES = ", ".join({Path(p).resolve(): str(p) for p in workflow.configfiles}.values()) or "config"
try:
    config.update(check_config(config, source=CONFIG_FILES))
    check_models_config(config, source=CONFIG_FILES)
    check_fusionseg_data(config, source=CONFIG_FILES)
except ConfigError as error:
    raise ConfigError(str(error)) from None

OUT = config["out_dir"].rstrip("/")
# The config every result below OUT was made with, written when the default target completes (rule
# effective_config): what export-models records in a bundle, and what validate-config compares with.
EFFECTIVE_CONFIG_FILE = f"{OUT}/{EFFECTIVE_CONFIG}"
RES = config["resources"]
SYSTEMS = config["systems"]
# The methods each system adds to the summary. Semi-supervised ones are given the first annotated mask.
# TSN with FusionSeg adds Ours-Joint+TSN (joint-tsn): TSN propagating an Ours-Joint mask, no ground truth.
SYSTEM_METHODS = {
    "fusionseg": ("flow-th", "flow-sal", "appearance", "motion", "joint"),
    "tsn": ("tsn", *(["tsn-pixel"] if config["tsn"]["ablation"] else []), *(["joint-tsn"] if "fusionseg" in SYSTEMS else [])),
    "segflow": ("segflow", *(["segflow-online"] if config["segflow"]["online"] else [])),
}
SEMI_SUPERVISED_METHODS = ("tsn", "tsn-pixel", "segflow-online")
# Every summary has the Saliency row (U²-Netp per frame, no training): the floor a learned method must beat.
BASELINE_METHODS = ("saliency",)
METHODS = [*BASELINE_METHODS, *(method for system in SYSTEMS for method in SYSTEM_METHODS[system])]
SEGFLOW_MODEL = f"{OUT}/models/segflow.pt"

# Rules call `fusionseg <step>`, a shell function running `-m fusionseg` with the Python that runs
# Snakemake (so a virtual environment's snakemake works without activating it), except where each job
# brings its own environment (--sdm conda or apptainer): there the environment's `python`. The package
# comes from this checkout, so a job runs its own workflow's code even where it is not installed.
_OWN_ENVIRONMENTS = {DeploymentMethod.CONDA, DeploymentMethod.APPTAINER}
PYTHON = "python" if _OWN_ENVIRONMENTS & set(workflow.deployment_settings.deployment_method) else shlex.quote(sys.executable)
shell.prefix(
    f"set -euo pipefail; export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
    f'fusionseg() {{{{ {PYTHON} -m fusionseg "$@"; }}}}; '
)
CONDA_ENV = str(Path(workflow.basedir) / "envs" / f"fusionseg-{'cuda' if RES['gpu'] else 'cpu'}.yaml")


# Dataset and sequence names follow one rule (the schema's $defs/name, checked again where sequences are
# listed): no character a shell or a path would read, so a path built from them stays one word.
wildcard_constraints:
    dataset=NAME_PATTERN,
    seq=NAME_PATTERN,


def sequences_of(*roles: str) -> list[tuple[str, str]]:
    """The video (dataset, sequence) pairs of the given roles, without repeats, in config order.

    Still-image datasets (IMAGE_DATASETS) are left out: they have no frames or flow (rules/images.smk)."""
    pairs = {}
    for role in roles:
        pairs.update(dict.fromkeys(p for p in role_sequences(config, role) if p[0] not in IMAGE_DATASETS))
    return list(pairs)


IMAGE_DATASETS = [n for n, d in config["datasets"].items() if d["layout"] in IMAGE_LAYOUTS]
APPEARANCE_IMAGE_DATASETS = list(
    dict.fromkeys(e["dataset"] for e in config["roles"]["appearance_train"] if e["dataset"] in IMAGE_DATASETS)
)
MOTION_FROM_ANNOTATED = "annotated" in config["motion_sources"]
FRAME_PAIRS = sequences_of(*ROLES)
FLOW_PAIRS = sequences_of(
    "weak_video", "fusion_train", *SCORED_ROLES, "segment", *(["appearance_train"] if MOTION_FROM_ANNOTATED else [])
)
APPEARANCE_PROB_PAIRS = sequences_of("weak_video", "fusion_train", *SCORED_ROLES, "segment")
MOTION_PROB_PAIRS = sequences_of("fusion_train", *SCORED_ROLES, "segment")
BENCHMARK_PAIRS = sequences_of("benchmark")
BENCHMARK_DATASETS = list(dict.fromkeys(dataset for dataset, _ in BENCHMARK_PAIRS))
# Per scored role (benchmark, validation): its sequences, and those semi-supervised methods run on.
SCORED_PAIRS = {role: sequences_of(role) for role in SCORED_ROLES}


def semi_supervised_pairs(role: str) -> list[tuple[str, str]]:
    pairs = []
    for entry in config["roles"][role]:
        if entry["semi_supervised"]:
            pairs += [p for p in role_sequences(config, role) if p[0] == entry["dataset"] and p not in pairs]
    return [p for p in pairs if p in SCORED_PAIRS[role]]


SEMI_PAIRS = {role: semi_supervised_pairs(role) for role in SCORED_ROLES}


def method_pairs(method: str, role: str = "benchmark") -> list[tuple[str, str]]:
    """The (dataset, sequence) pairs of a scored role that `method` is run on and scored on."""
    return SEMI_PAIRS[role] if method in SEMI_SUPERVISED_METHODS else SCORED_PAIRS[role]


def scored_pairs_of(method: str) -> list[tuple[str, str]]:
    """Every (dataset, sequence) pair `method` is run on, over all scored roles."""
    return list(dict.fromkeys(p for role in SCORED_PAIRS for p in method_pairs(method, role)))


def method_datasets(method: str, role: str = "benchmark") -> list[str]:
    return list(dict.fromkeys(dataset for dataset, _ in method_pairs(method, role)))


# Trained here (models/<name>.pt), or given by `models:` and checked into models/imported/ (rules/segment.smk).
TRAINED_HERE = not config["models"]
# FusionSeg's bootstrap runs only where its motion stream trains on pseudo labels here; then the config
# check has made sure it has weak video (without, the step would be planned with no inputs).
BOOTSTRAPS = TRAINED_HERE and "fusionseg" in SYSTEMS and "shards" in config["motion_sources"]


def model_path(name: str) -> str:
    """The checkpoint inference reads: appearance, motion or fusion."""
    return f"{OUT}/models/{name}.pt" if TRAINED_HERE else f"{OUT}/models/imported/{name}.pt"


def frames_dir(dataset: str, seq: str) -> str:
    return f"{OUT}/frames/{dataset}/JPEGImages/480p/{seq}"


def flow_h5(dataset: str, seq: str) -> str:
    return f"{OUT}/flow/{dataset}/{seq}.h5"


def flow_rgb_dir(dataset: str, seq: str) -> str:
    return f"{OUT}/flow_rgb/{dataset}/{seq}"


def probs_h5(stream: str, dataset: str, seq: str) -> str:
    return f"{OUT}/probs/{stream}/{dataset}/{seq}.h5"


def routing_h5(dataset: str, seq: str) -> str:
    """TSN's routing map per frame (infer_tsn), shown in the report."""
    return f"{OUT}/probs/tsn-routing/{dataset}/{seq}.h5"


def masks_dir(method: str, dataset: str, seq: str) -> str:
    return f"{OUT}/results/masks/{method}/{dataset}/{seq}"


def scores_csv(method: str, dataset: str, role: str = "benchmark") -> str:
    """Benchmark scores under results/scores; validation scores under results/validation/scores."""
    prefix = "" if role == "benchmark" else f"{role}/"
    return f"{OUT}/results/{prefix}scores/{method}/{dataset}.csv"


def all_scores(role: str = "benchmark") -> list[str]:
    return [scores_csv(m, d, role) for m in METHODS for d in method_datasets(m, role)]


def each(path_of, pairs: list[tuple[str, str]], *prefix: str) -> list[str]:
    """`path_of(*prefix, dataset, seq)` for every pair."""
    return [path_of(*prefix, dataset, seq) for dataset, seq in pairs]


def log_of(rule_name: str, *wildcards: str) -> str:
    return os.path.join(OUT, "logs", rule_name, *[f"{{{w}}}" for w in wildcards]) + ".log"


def benchmark_of(rule_name: str, *wildcards: str) -> str:
    return os.path.join(OUT, "benchmarks", rule_name, *[f"{{{w}}}" for w in wildcards]) + ".tsv"


def as_json(section: dict) -> str:
    """A config section as canonical JSON: equal settings give equal params (no spurious reruns)."""
    return json.dumps(section, sort_keys=True, separators=(",", ":"))


def result_json(section: str) -> str:
    """What in a config section changes a step's result, as a param: changing it reruns the step."""
    return as_json(result_settings(section, config[section]))


def run_options(section: str) -> str:
    """A section's how-it-runs settings (fusionseg.config.RUN_SETTINGS) as command-line flags. Jobs get
    them as a resource, not a param: Snakemake reruns a job when its params, code (the shell command as
    written, not as filled in) or inputs change, never its resources, so a new device or log interval
    reruns nothing."""
    values = config[section]
    return " ".join(f"--{key.replace('_', '-')} {shlex.quote(str(values[key]))}" for key in RUN_SETTINGS[section])


def quoted(flag: str, paths) -> str:
    """`flag` and each path as shell words ('' without paths): every path a helper puts into a command."""
    return " ".join([flag, *map(shlex.quote, map(str, paths))]) if paths else ""


def name_pattern(names: list[str]) -> str:
    """A wildcard regex matching exactly these names (or nothing when there are none)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


# The rules whose requests resources.rules may set: those that call job_resources (a `use rule ... as`
# variant, e.g. score_validation, asks for what its base rule asks for).
RESOURCE_RULES = set()


def job_resources(rule_name: str, gpu: bool = False) -> dict:
    """What a job of `rule_name` asks the scheduler for: config resources.rules.<rule_name> where it says,
    else the defaults: a GPU step (`gpu`) resources.gpu GPUs (0: none) and gpu_mem_mb of host memory, any
    other step mem_mb; resources.runtime minutes. A job with GPUs goes to resources.gpu_partition."""
    RESOURCE_RULES.add(rule_name)
    requested = RES["rules"].get(rule_name, {})
    gpus = requested.get("gpu", RES["gpu"] if gpu else 0)
    resources = {
        "mem_mb": requested.get("mem_mb", RES["gpu_mem_mb"] if gpus else RES["mem_mb"]),
        "runtime": requested.get("runtime", RES["runtime"]),
    }
    if gpus:
        resources["gpu"] = gpus
    partition = (RES.get("gpu_partition") if gpus else None) or RES.get("slurm_partition")
    if partition:
        resources["slurm_partition"] = partition
    return resources


def check_resource_rules() -> None:
    """resources.rules may only name rules that read it: a misspelt name would silently leave that rule
    at the defaults (for a long training job, a time limit that kills it). Call once every rule exists."""
    unknown = sorted(set(RES["rules"]) - RESOURCE_RULES)
    if unknown:
        raise ConfigError(
            f"{CONFIG_FILES}: resources.rules.{unknown[0]}: not a rule with its own requests "
            f"(those are: {', '.join(sorted(RESOURCE_RULES))})"
        )


def image_manifest(dataset: str) -> str:
    return f"{OUT}/images/{dataset}/manifest.csv"


def appearance_source_flags(wildcards, input) -> str:
    """train-appearance's sources: the annotated video sequences and the image caches."""
    return " ".join([quoted("--frames", input.frames), *(quoted("--images", [m]) for m in input.images)]).strip()


def parent_dir(paths) -> str:
    return str(Path(paths[0]).parent)


def segment_dir(dataset: str, seq: str) -> str:
    return f"{OUT}/segment/{dataset}/{seq}"
