"""Optical flow: a batched PyTorch TV-L1, OpenCV backends, sequence HDF5 files and colour coding.

Later stages read a sequence's raw flow with `read_flow_h5` and its motion images from the folder
that `encode-flow` writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_flow_h5(path: str | Path) -> np.ndarray:
    """The raw flow of a sequence as float32 (N, H, W, 2); see `fusionseg.flow.sequence.read_flow_h5`."""
    # Imported on use so that `fusionseg --help` does not load OpenCV and pandas through this package.
    from fusionseg.flow.sequence import read_flow_h5 as read

    return read(path)


__all__ = ["read_flow_h5"]
