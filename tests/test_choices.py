"""benchmarks/choices.py: every choice it reruns is the shipped config against its alternatives."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import choices  # noqa: E402

from fusionseg.config import check_config  # noqa: E402


@pytest.fixture(autouse=True)
def in_repository(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """configs/davis-cpu.yaml names its data relative to the repository, where the script runs it."""
    monkeypatch.chdir(REPO)


@pytest.mark.parametrize("name", list(choices.CHOICES))
def test_exactly_one_variant_is_what_the_shipped_config_says(name: str) -> None:
    shipped = [variant.name for variant in choices.CHOICES[name].variants if choices.is_shipped(variant)]
    assert len(shipped) == 1, f"{name}: shipped variants {shipped} (configs/davis-cpu.yaml changed without its choice)"


@pytest.mark.parametrize("name", list(choices.CHOICES))
def test_every_variant_is_a_valid_config_scored_on_the_validation_split_only(name: str, tmp_path: Path) -> None:
    choice = choices.CHOICES[name]
    for variant in choice.variants:
        config = choices.variant_config(variant, tmp_path / "run")
        check_config(config)
        wanted = choices.targets(config, choice)
        assert {path.parent.name for path in wanted} == set(choice.methods)
        assert all(path.is_relative_to(tmp_path / "run" / "results" / "validation") for path in wanted)
