"""benchmarks/gpu.py on a machine without CUDA (CI, this one): one line, status 77, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys

from snakemake_support import REPO


def test_gpu_benchmark_says_no_cuda_in_one_line_and_exits_77(tmp_path) -> None:
    out = tmp_path / "gpu.md"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--out", str(out)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert result.returncode == 77
    assert (result.stdout + result.stderr).splitlines() == [
        "benchmarks/gpu.py: no CUDA device (torch.cuda.is_available() is False); nothing measured"
    ]
    assert not out.exists()
