"""Inference: stream and joint probabilities per sequence, and binary masks from them."""

from fusionseg.infer.probs import read_probs, read_probs_attrs, write_probs

__all__ = ["read_probs", "read_probs_attrs", "write_probs"]
