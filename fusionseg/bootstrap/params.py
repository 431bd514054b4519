"""The `bootstrap` config section: validated against the schema, defaults filled in."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema

from fusionseg.config import load_schema
from fusionseg.errors import ConfigError

SECTION = "bootstrap"


def section_schema() -> dict:
    return load_schema()["properties"][SECTION]


def parse_params(text: str | None) -> dict[str, Any]:
    """Parse `--params JSON` (may be absent) into a checked section with defaults."""
    if not text:
        return check_params({})
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--params: not valid JSON ({exc})") from exc
    if not isinstance(params, dict):
        raise ConfigError(f"--params: must be a JSON object (the {SECTION} section), not {type(params).__name__}")
    return check_params(params)


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Reject unknown keys and bad values (naming the key), and fill in defaults."""
    schema = section_schema()
    properties = schema["properties"]
    unknown = sorted(set(params) - set(properties))
    if unknown:
        raise ConfigError(f"{SECTION}.{unknown[0]}: unknown key (known: {', '.join(sorted(properties))})")
    filled = copy.deepcopy(params)
    for key, spec in properties.items():
        filled.setdefault(key, spec["default"])
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(filled), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        key = ".".join(str(p) for p in error.absolute_path)
        raise ConfigError(f"{SECTION}.{key}: {error.message}")
    return filled
