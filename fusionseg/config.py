"""Loading and checking the workflow configuration.

The same checks run at workflow start (the Snakefile calls `check_config`) and in the CLI, so a typo
or a dataset root that points at nothing fails before any job starts, with the key named.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from fusionseg.datasets.catalog import IMAGE_LAYOUTS
from fusionseg.errors import ConfigError, FusionSegError

ROLES = ("appearance_train", "weak_video", "fusion_train", "flow_train", "benchmark", "validation", "segment")
# Roles whose sequences are scored: the benchmark, and the validation split that settings are chosen on.
SCORED_ROLES = ("benchmark", "validation")
SYSTEMS = ("fusionseg", "tsn", "segflow")


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
    _raise_first_error(jsonschema.Draft202012Validator(schema), params, source, section)
    return params


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
    video = [e for e in roles["appearance_train"] if config["datasets"][e["dataset"]]["layout"] not in IMAGE_LAYOUTS]
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


def validate_schema(config: dict, source: str = "config") -> None:
    """Fill schema defaults into `config` in place, then validate; errors name the key."""
    schema = load_schema()
    _fill_defaults(config, schema, schema)
    _raise_first_error(jsonschema.Draft202012Validator(schema), config, source)


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
