"""Training parameters from `--params JSON`: validated against the config schema, defaults filled."""

from __future__ import annotations

import copy
import json

import jsonschema

from fusionseg.config import load_schema
from fusionseg.errors import ConfigError

SECTIONS = ("appearance", "motion", "fusion")


def section_schema(section: str) -> dict:
    """The schema of a training section (appearance/motion share `$defs/train`)."""
    schema = load_schema()
    if section == "fusion":
        return schema["properties"]["fusion"]
    return schema["$defs"]["train"]


def training_params(text: str | None, section: str) -> dict:
    """Parse, fill defaults and validate; unknown or invalid keys raise ConfigError naming the key."""
    if section not in SECTIONS:
        raise ValueError(f"unknown training section {section!r}")
    try:
        given = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--params: not valid JSON ({exc})") from exc
    if not isinstance(given, dict):
        raise ConfigError(f"--params: expected a JSON object (the config's {section} section)")
    schema = section_schema(section)
    params = copy.deepcopy(given)
    for key, sub in schema["properties"].items():
        if key not in params and "default" in sub:
            params[key] = copy.deepcopy(sub["default"])
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(params), key=lambda e: list(e.path))
    if errors:
        lines = [f"{section}.{_key(e)}: {e.message}" for e in errors]
        raise ConfigError("invalid training parameters:\n  " + "\n  ".join(lines))
    return params


def _key(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return "(unknown key)"
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"
