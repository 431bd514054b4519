"""Loading and checking the workflow configuration.

The same checks run at workflow start (the Snakefile calls `check_config`) and in the CLI, so a typo
or a dataset root that points at nothing fails before any job starts, with the key named.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from fusionseg.datasets.catalog import IMAGE_LAYOUTS
from fusionseg.errors import ConfigError

ROLES = ("appearance_train", "weak_video", "fusion_train", "benchmark", "validation", "segment")
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
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    return check_config(config, source=str(path))


def check_config(config: dict, source: str = "config") -> dict:
    """Validate against the schema (filling defaults) and check role assignments; return the config."""
    config = copy.deepcopy(config)
    validate_schema(config, source)
    check_roles(config, source)
    return config


def validate_schema(config: dict, source: str = "config") -> None:
    """Fill schema defaults into `config` in place, then validate; errors name the key."""
    schema = load_schema()
    _fill_defaults(config, schema, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{source}: {_key_name(e)}: {e.message}" for e in errors]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


def role_sequences(config: dict, role: str) -> list[tuple[str, str]]:
    """The (dataset, sequence) pairs assigned to a role, in config order."""
    from fusionseg.datasets import list_sequences

    pairs = []
    for entry in config["roles"][role]:
        name = entry["dataset"]
        available = list_sequences(name, config["datasets"][name])
        wanted = entry.get("sequences") or available
        missing = [s for s in wanted if s not in available]
        if missing:
            raise ConfigError(
                f"roles.{role}: dataset '{name}' has no sequence(s) {', '.join(missing)} "
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
    for name, dataset in config["datasets"].items():
        if dataset["layout"] != "synthetic":
            root = dataset.get("root")
            if not root:
                raise ConfigError(f"{source}: datasets.{name}.root: required for layout '{dataset['layout']}'")
            if not Path(root).exists():
                raise ConfigError(f"{source}: datasets.{name}.root: '{root}' does not exist")
    allowed = {frozenset(pair) for pair in config.get("role_overlap", [])}
    members = {role: _identities(config, role) for role in ROLES}
    for i, first in enumerate(ROLES):
        for second in ROLES[i + 1 :]:
            shared = set(members[first]) & set(members[second])
            if shared and frozenset((first, second)) not in allowed:
                example = ", ".join(sorted(members[first][key] for key in shared)[:5])
                raise ConfigError(
                    f"{source}: roles {first} and {second} share {len(shared)} sequence(s) ({example}); "
                    f"list [{first}, {second}] under role_overlap if that is intended"
                )


def _identities(config: dict, role: str) -> dict[tuple[str, str], str]:
    """Role members keyed by where their data comes from, so that one sequence declared under two
    dataset names (say, once with masks and once as boxes-only weak video) still counts as shared."""
    keyed = {}
    for dataset, seq in role_sequences(config, role):
        entry = config["datasets"][dataset]
        source = f"synthetic:{dataset}" if entry["layout"] == "synthetic" else str(Path(entry["root"]).resolve())
        keyed[(source, seq)] = f"{dataset}/{seq}"
    return keyed


def overlapping_roles(config: dict) -> list[dict[str, Any]]:
    """Sequences that appear in more than one role (allowed by role_overlap), for the report."""
    where: dict[tuple[str, str], list[str]] = {}
    for role in ROLES:
        for pair in role_sequences(config, role):
            where.setdefault(pair, []).append(role)
    return [
        {"dataset": d, "sequence": s, "roles": roles} for (d, s), roles in sorted(where.items()) if len(roles) > 1
    ]


def _key_name(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _fill_defaults(instance: Any, schema: dict, root: dict) -> None:
    """Insert `default` values for missing properties, recursively (through $ref as well)."""
    if "$ref" in schema:
        ref = schema["$ref"]
        target = root
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        _fill_defaults(instance, target, root)
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
