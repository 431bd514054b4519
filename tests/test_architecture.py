"""Imports run one way: every module of fusionseg imports only from its own subpackage or from a lower
layer (docs/architecture.md, "Package layers"). The table is the code's layering, read off its imports;
a new subpackage or top-level module needs a row here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fusionseg"

# Lowest first. A unit is a subpackage or a top-level module of fusionseg; "" is fusionseg/__init__.py
# (its __version__). Units in one layer do not import each other.
LAYERS: list[tuple[str, ...]] = [
    ("", "errors"),  # the package's version; the errors every layer raises
    ("signals", "lazy", "devices"),  # SIGTERM as exceptions; lazy exports; device and thread choice
    ("io",),  # atomic outputs, HDF5, images, .flo, tables, digests
    ("models", "shards"),  # networks, weights and checkpoints; training shards
    ("datasets",),  # the canonical dataset layout, readers, synthetic and miniature datasets
    ("config",),  # the config schema, roles and run options (names datasets)
    ("flow", "metrics", "infer"),  # stages: optical flow; scores; stream and fusion inference
    ("train", "baselines"),  # the shared trainer and stream training; Saliency / Flow-Sal baselines
    ("tsn", "segflow", "bootstrap"),  # systems: TSN, SegFlow; the bootstrapped training data
    ("bundles",),  # model bundles: a run's networks in one checked file
    ("report",),  # the HTML report (reads segmented folders through report.segmented)
    ("segment",),  # segment any video with a bundle
    ("cli",),  # the command line: finds every stage's cli module (importlib, by name)
    ("__main__",),  # python -m fusionseg
]
LAYER = {unit: index for index, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    """'fusionseg.flow.tvl1' -> 'flow'; 'fusionseg' -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def package_modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported(path: Path, package: str | None = None) -> list[tuple[int, str]]:
    """(line, module) of every fusionseg import in the file: top level, inside functions, under
    TYPE_CHECKING, relative imports resolved, and the modules named in a lazy `_EXPORTS` table."""
    tree = ast.parse(path.read_text(), filename=str(path))
    if package is None:  # the package the file is in, for relative imports
        package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], *([base] if base else [])])
            found.append((node.lineno, base))
            # `from fusionseg import flow` imports the subpackage flow
            if base == "fusionseg":
                found += [(node.lineno, f"fusionseg.{alias.name}") for alias in node.names if alias.name in LAYER]
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets):
            if isinstance(node.value, ast.Dict):
                found += [(node.lineno, v.value) for v in node.value.values if isinstance(v, ast.Constant)]
    return [(line, name) for line, name in found if name == "fusionseg" or name.startswith("fusionseg.")]


MODULES = package_modules()


def test_every_unit_has_a_layer() -> None:
    units = {unit_of(module) for module in MODULES}
    assert units - set(LAYER) == set(), "give each new subpackage or top-level module a row in LAYERS"
    assert set(LAYER) - units == set(), "LAYERS names a unit that no longer exists"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_one_way(module: str) -> None:
    unit = unit_of(module)
    wrong = []
    for line, name in imported(MODULES[module]):
        target = unit_of(name)
        if target == unit:
            continue
        if target not in LAYER or LAYER[target] >= LAYER[unit]:
            where = "the same layer" if LAYER.get(target) == LAYER[unit] else "a higher layer"
            wrong.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {name} ({where})")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_lazy_relative_and_exported_imports(tmp_path: Path) -> None:
    source = tmp_path / "fake.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from fusionseg.tsn.model import TSNModel\n"
        "def f():\n    from fusionseg.segment.outputs import RECORD\n    from ..report import build\n"
        "_EXPORTS = {'read_flo': 'fusionseg.io.flo'}\n"
    )
    names = sorted(name for _, name in imported(source, "fusionseg.flow"))
    assert names == ["fusionseg.io.flo", "fusionseg.report", "fusionseg.segment.outputs", "fusionseg.tsn.model"]
