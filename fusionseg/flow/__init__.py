"""Optical flow: a batched PyTorch TV-L1, OpenCV backends, sequence HDF5 files and colour coding.

Later stages read a sequence's raw flow with `read_flow_h5` and its motion images from the folder
that `encode-flow` writes.
"""

from fusionseg.flow.sequence import read_flow_h5

__all__ = ["read_flow_h5"]
