"""Loading and checking the workflow configuration.

The same checks run at workflow start (the Snakefile calls `check_config`) and in the CLI, so a typo
or a dataset root that points at nothing fails before any job starts, with the key named.
"""

from __future__ import annotations

import argparse
import copy
import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from fusionseg.datasets.catalog import IMAGE_LAYOUTS, NAME_PATTERN, NAME_RULE
from fusionseg.errors import ConfigError, FusionSegError

if TYPE_CHECKING:
    import jsonschema

ROLES = ("appearance_train", "weak_video", "fusion_train", "flow_train", "benchmark", "validation", "segment")
# Roles whose sequences are scored: the benchmark, and the validation split that settings are chosen on.
SCORED_ROLES = ("benchmark", "validation")
SYSTEMS = ("fusionseg", "tsn", "segflow")
# Settings that change how a step runs, never what it computes; the workflow hands them to jobs outside
# their rule's params, so changing one reruns nothing. Training is seeded per iteration and resumes
# exactly, so its device, loader processes and log and checkpoint intervals leave the weights alone
# (tests/test_train.py); TV-L1 solves each pair of a batch on its own (flow.batch_size: bit for bit).
# A device changes floating-point rounding only (and `auto` could not be pinned in a param anyway).
# inference.batch_size is not here: batches of 4 and 1 give float16 probabilities one unit apart in the
# last place on the CPU, which can move a pixel across the threshold.
RUN_SETTINGS = {
    "appearance": ("device", "loader_workers", "log_every", "checkpoint_every"),
    "motion": ("device", "loader_workers", "log_every", "checkpoint_every"),
    "fusion": ("device", "log_every", "checkpoint_every"),
    "tsn": ("device", "log_every", "checkpoint_every"),
    "segflow": ("device", "log_every", "checkpoint_every"),
    "flow": ("device", "batch_size"),
    "inference": ("device",),
}
# The name of the config a workflow run used, written into its out_dir when the run finishes.
EFFECTIVE_CONFIG = "config.effective.yaml"


def schema_path() -> Path:
    return Path(str(resources.files("fusionseg") / "schema" / "config.schema.yaml"))


def load_schema() -> dict:
    with open(schema_path()) as fh:
        return yaml.safe_load(fh)


def load_config(path: str | Path) -> dict:
    """Read a YAML config, fill defaults, validate it, and check its datasets and roles."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    with open(path) as fh:
        try:
            config = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from exc
    return check_config(config, source=str(path))


def run_config_path(path: str | Path) -> Path:
    """The effective config of a workflow run (out_dir/config.effective.yaml, written when a run
    finishes): `path` is that file, the run's out_dir, or the config file the run was given (its
    out_dir is relative to the working directory, as Snakemake reads it)."""
    path = Path(path)
    if path.is_dir():
        effective = path / EFFECTIVE_CONFIG
    elif path.name == EFFECTIVE_CONFIG:
        effective = path
    else:
        effective = Path(load_config(path)["out_dir"]) / EFFECTIVE_CONFIG
    if not effective.is_file():
        raise ConfigError(f"{effective}: not found; the workflow writes it when a run finishes (snakemake's default target)")
    return effective


def differences(first: Any, second: Any, prefix: str = "") -> list[str]:
    """The dotted keys at which two configs differ (lists compared whole)."""
    if not (isinstance(first, dict) and isinstance(second, dict)):
        return [] if first == second else [prefix or "(top level)"]
    return [
        difference
        for key in sorted({*first, *second}, key=str)
        for difference in differences(first.get(key), second.get(key), f"{prefix}.{key}" if prefix else str(key))
    ]


def section_params(section: str, given: dict | str | None = None, source: str = "--params") -> dict:
    """One section of the config, e.g. "bootstrap", "appearance" or "flow.tvl1", as a step receives it
    (`--params`: a dict or JSON text; None for all defaults): schema defaults filled, validated.

    The one place that checks a section: errors are one line, `<source>: <section>.<key>: <problem>`.
    """
    if given is None or isinstance(given, str):
        try:
            given = json.loads(given) if given else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}: not valid JSON ({exc})") from exc
    if not isinstance(given, dict):
        raise ConfigError(f"{source}: expected a JSON object (the config's {section} section), not {type(given).__name__}")
    root = load_schema()
    schema = {"$defs": root.get("$defs", {}), **_section_schema(root, section)}
    params = copy.deepcopy(given)
    _fill_defaults(params, schema, root)
    _raise_first_error(_validator(schema), params, source, section)
    return params


def result_settings(section: str, values: dict) -> dict:
    """A config section without its how-it-runs settings (RUN_SETTINGS)."""
    return {key: value for key, value in values.items() if key not in RUN_SETTINGS.get(section, ())}


def result_config(config: dict) -> dict:
    """What in a config changes results: every section's result settings; `resources` only say how."""
    return {
        key: result_settings(key, value) if key in RUN_SETTINGS else value for key, value in config.items() if key != "resources"
    }


def add_run_options(parser: argparse.ArgumentParser, section: str) -> None:
    """A flag per how-it-runs setting of a training section (--device, --log-every, ...), overriding
    the value in --params: the workflow passes these apart from the params that decide reruns."""
    from fusionseg.devices import DEVICES

    for key in RUN_SETTINGS[section]:
        flag = "--" + key.replace("_", "-")
        if key == "device":
            parser.add_argument(flag, choices=DEVICES, help=f"overrides the {section} section's device")
        else:
            parser.add_argument(flag, type=int, metavar="N", help=f"overrides the {section} section's {key}")


def with_run_options(section: str, params: dict, args: argparse.Namespace) -> dict:
    """A checked section with the run options given on the command line (add_run_options), checked again."""
    given = {key: getattr(args, key) for key in RUN_SETTINGS[section] if getattr(args, key) is not None}
    return section_params(section, {**params, **given}, source="command line") if given else params


def check_config(config: dict, source: str = "config") -> dict:
    """Validate against the schema (filling defaults) and check role assignments; return the config."""
    config = copy.deepcopy(config)
    validate_schema(config, source)
    check_roles(config, source)
    check_systems(config, source)
    return config


def check_systems(config: dict, source: str = "config") -> None:
    """TSN and SegFlow train in the workflow: they need annotated video, and SegFlow flow with ground truth."""
    roles = config["roles"]
    video = _annotated_video(config)
    for system in ("tsn", "segflow"):
        if system in config["systems"] and not video:
            raise ConfigError(
                f"{source}: systems: {system} trains on the annotated video of roles.appearance_train, which has none"
            )
    if "segflow" in config["systems"] and not (roles["flow_train"] or config["segflow"]["flow_pairs"]):
        raise ConfigError(
            f"{source}: systems: segflow needs flow with ground truth: synthetic clips in roles.flow_train "
            f"or real pairs in segflow.flow_pairs"
        )


def _annotated_video(config: dict) -> list[dict]:
    """The video (not still-image) entries of roles.appearance_train."""
    entries = config["roles"]["appearance_train"]
    return [e for e in entries if config["datasets"][e["dataset"]]["layout"] not in IMAGE_LAYOUTS]


def check_fusionseg_data(config: dict, source: str = "config") -> None:
    """The workflow plans no FusionSeg step without its data: trained here, each of its training steps
    has a role to train on; the segment role, segmented by FusionSeg, needs it among the systems. (Not
    part of check_config: a config for one step, e.g. the roles a bundle records, need not train all.)"""
    roles, models = config["roles"], config["models"]
    if "fusionseg" not in config["systems"]:
        if roles["segment"] and not models:
            raise ConfigError(
                f"{source}: roles.segment: videos are segmented by FusionSeg; add fusionseg to systems (or give models:)"
            )
        return
    if models:
        return
    sources = config["motion_sources"]
    needs = {  # what is missing: (the step that trains on it, whether it is there or not needed)
        "roles.appearance_train": ("the appearance stream", bool(roles["appearance_train"])),
        "roles.fusion_train": ("the fusion layer", bool(roles["fusion_train"])),
        "roles.weak_video": ("the bootstrap (motion_sources: shards)", bool(roles["weak_video"]) or "shards" not in sources),
        "annotated video in roles.appearance_train": (
            "the motion stream (motion_sources: annotated)", bool(_annotated_video(config)) or "annotated" not in sources
        ),
    }
    for what, (step, present) in needs.items():
        if not present:
            raise ConfigError(f"{source}: systems: fusionseg trains {step} here, but there is no {what}")


def validate_schema(config: dict, source: str = "config") -> None:
    """Fill schema defaults into `config` in place, then validate; errors name the key."""
    schema = load_schema()
    _fill_defaults(config, schema, schema)
    _raise_first_error(_validator(schema), config, source)


def role_sequences(config: dict, role: str, source: str = "config") -> list[tuple[str, str]]:
    """The (dataset, sequence) pairs assigned to a role, in config order; errors name `source`."""
    from fusionseg.datasets import list_sequences

    pairs = []
    for entry in config["roles"][role]:
        name = entry["dataset"]
        try:
            available = list_sequences(name, config["datasets"][name])
        except FusionSegError as exc:
            message = str(exc)
            where = "" if message.startswith(f"datasets.{name}") else f"datasets.{name}: "
            raise ConfigError(f"{source}: {where}{message}") from exc
        wanted = entry.get("sequences") or available
        missing = [s for s in wanted if s not in available]
        if missing:
            raise ConfigError(
                f"{source}: roles.{role}: dataset '{name}' has no sequence(s) {', '.join(missing)} "
                f"(it has {len(available)}: {', '.join(available[:8])}{' ...' if len(available) > 8 else ''})"
            )
        pairs.extend((name, s) for s in wanted)
    return pairs


def check_roles(config: dict, source: str = "config") -> None:
    """Every role names declared datasets; two roles share a sequence only where role_overlap allows."""
    for role in ROLES:
        for entry in config["roles"][role]:
            if entry["dataset"] not in config["datasets"]:
                raise ConfigError(f"{source}: roles.{role}: dataset '{entry['dataset']}' is not declared under datasets")
            layout = config["datasets"][entry["dataset"]]["layout"]
            if role != "appearance_train" and layout in IMAGE_LAYOUTS:
                raise ConfigError(
                    f"{source}: roles.{role}: dataset '{entry['dataset']}' has layout '{layout}' (still images, no "
                    f"motion): it can only be in appearance_train"
                )
            if role == "flow_train" and layout != "synthetic":
                raise ConfigError(
                    f"{source}: roles.flow_train: dataset '{entry['dataset']}' has layout '{layout}': flow training "
                    f"needs exact ground-truth flow, which only synthetic clips have (real pairs: segflow.flow_pairs)"
                )
    for name, dataset in config["datasets"].items():
        if dataset["layout"] != "synthetic":
            root = dataset.get("root")
            if not root:
                raise ConfigError(f"{source}: datasets.{name}.root: required for layout '{dataset['layout']}'")
            if not Path(root).exists():
                raise ConfigError(f"{source}: datasets.{name}.root: '{root}' does not exist")
    allowed = {frozenset(pair) for pair in config.get("role_overlap", [])}
    members = {role: _identities(config, role, source) for role in ROLES}
    for i, first in enumerate(ROLES):
        for second in ROLES[i + 1 :]:
            shared = set(members[first]) & set(members[second])
            if shared and frozenset((first, second)) not in allowed:
                example = ", ".join(sorted(members[first][key] for key in shared)[:5])
                raise ConfigError(
                    f"{source}: roles {first} and {second} share {len(shared)} sequence(s) ({example}); "
                    f"list [{first}, {second}] under role_overlap if that is intended"
                )


def _identities(config: dict, role: str, source: str) -> dict[tuple[str, str], str]:
    """Role members keyed by where their data comes from, so that one sequence declared under two
    dataset names (say, once with masks and once as boxes-only weak video) still counts as shared."""
    keyed = {}
    for dataset, seq in role_sequences(config, role, source):
        entry = config["datasets"][dataset]
        source = f"synthetic:{dataset}" if entry["layout"] == "synthetic" else str(Path(entry["root"]).resolve())
        keyed[(source, seq)] = f"{dataset}/{seq}"
    return keyed


def _section_schema(root: dict, section: str) -> dict:
    """The schema of a section given as a dotted path of properties ("flow.tvl1"), $refs followed."""
    schema = root
    for part in section.split("."):
        properties = _dereferenced(schema, root).get("properties", {})
        if part not in properties:
            raise ValueError(f"the config schema has no section {section!r}")
        schema = properties[part]
    return _dereferenced(schema, root)


def _dereferenced(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        target = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _validator(schema: dict) -> jsonschema.Draft202012Validator:
    import jsonschema  # on use: training commands import this module to register their flags (fast --help)

    return jsonschema.Draft202012Validator(schema)


def _raise_first_error(validator: jsonschema.Draft202012Validator, instance: Any, source: str, prefix: str = "") -> None:
    """A ConfigError, one line, for the first schema error (by key), saying how many more there are."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {_error_line(errors[0], prefix)}{more}")


def _error_line(error: jsonschema.ValidationError, prefix: str) -> str:
    """'<key>: <problem>'; an unknown key is named itself, with the keys that are known there."""
    path = [prefix] if prefix else []
    path += [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        unknown = sorted(k for k in error.instance if k not in known)
        if unknown:
            return f"{'.'.join(path + [unknown[0]])}: unknown key (known: {', '.join(known)})"
    if error.validator == "pattern" and error.validator_value == f"^{NAME_PATTERN}$":
        return f"{'.'.join(path)}: name '{error.instance}' is not allowed (names are {NAME_RULE})"
    return f"{'.'.join(path) or '(top level)'}: {error.message}"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def _fill_defaults(instance: Any, schema: dict, root: dict) -> None:
    """Insert `default` values for missing properties, recursively (through $ref and array items too)."""
    if "$ref" in schema:
        ref = schema["$ref"]
        target = root
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        _fill_defaults(instance, target, root)
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            _fill_defaults(item, schema["items"], root)
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(value, extra, root)
