"""Shared fixtures. Real data in ../shared/data is optional: tests that need it skip without it."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder beside the checkout; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present (real data is only beside development checkouts)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def systems_run(tmp_path_factory) -> Path:
    """A finished real run of every system on tiny synthetic clips (tests/test_workflow_systems.py:
    systems_run_config), shared by the modules that read its results or plan reruns against it."""
    from snakemake_support import run_snakemake, write_config
    from test_workflow_systems import systems_run_config

    workdir = tmp_path_factory.mktemp("systems")
    write_config(workdir, systems_run_config(workdir))
    run_snakemake(workdir, "--cores", "2")
    return workdir


# Fixtures that run the workflow's DAG for real: every test that uses one, directly or through another
# fixture, is marked `slow` (pyproject's markers; `-m "not slow"` leaves them out, CI runs them all).
WHOLE_DAG_FIXTURES = {"systems_run", "tiny_run", "miniature_run"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if WHOLE_DAG_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def one_torch_thread():
    """Run a test with torch on one CPU thread, restoring the thread count afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The whole cluster DAG on a 2-core CPU: about 5 minutes on a quiet machine, 12 on a loaded one.
MINIATURE_RUN_TIMEOUT_S = 1800


@pytest.fixture(scope="session")
def miniature(tmp_path_factory) -> Path:
    """`fusionseg make-miniature`'s tree (every dataset of configs/davis-gpu.yaml), written once."""
    from fusionseg.cli import main

    path = tmp_path_factory.mktemp("miniature") / "miniature"
    assert main(["make-miniature", str(path)]) == 0
    return path


def miniature_workdir(workdir: Path, miniature: Path) -> Path:
    """`workdir` with the miniature at ./miniature, where the overlay's relative roots point."""
    (workdir / "miniature").symlink_to(miniature, target_is_directory=True)
    return workdir


@pytest.fixture(scope="session")
def miniature_run(tmp_path_factory, miniature) -> Path:
    """configs/davis-gpu.yaml with the miniature overlay, run to its report on this machine (the workdir)."""
    from snakemake_support import DAVIS_GPU, MINIATURE_OVERLAY, run_snakemake

    workdir = miniature_workdir(tmp_path_factory.mktemp("davis-gpu-local"), miniature)
    run_snakemake(workdir, "--cores", "2", configfiles=(DAVIS_GPU, MINIATURE_OVERLAY), timeout=MINIATURE_RUN_TIMEOUT_S)
    return workdir
