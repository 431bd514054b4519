"""The one --threads helper every step's command line uses (fusionseg.devices.set_threads)."""

from __future__ import annotations

import ast
from pathlib import Path

import cv2
import pytest
import torch

from fusionseg.devices import set_threads
from fusionseg.errors import ConfigError

PACKAGE = Path(__file__).resolve().parents[1] / "fusionseg"


@pytest.mark.parametrize("count", [0, -2])
def test_zero_or_negative_threads_is_one_line_error(count: int) -> None:
    with pytest.raises(ConfigError) as excinfo:
        set_threads(count)
    assert str(excinfo.value) == f"--threads: must be at least 1 (got {count})"


def test_threads_set_for_torch_and_opencv() -> None:
    before = torch.get_num_threads(), cv2.getNumThreads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        assert cv2.getNumThreads() == 1
        set_threads(None)  # leaves the libraries' own choice
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def test_every_threads_option_goes_through_set_threads() -> None:
    """A command line with a --threads option (metrics' --threads counts processes, not threads) sets
    it with set_threads, and nothing else in the package sets torch's thread count."""
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        if path.name == "cli.py" and '"--threads"' in text and path.parent.name != "metrics":
            assert "set_threads(args.threads)" in text, path
        if path.name != "devices.py":
            calls = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Attribute) and n.attr == "set_num_threads"]
            assert not calls, f"{path}: sets torch threads itself"
