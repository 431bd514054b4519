"""TSN's memory (STCN's read): the reference frames' keys, values and instance kernels, the affinity
of query positions to memory positions, and the soft aggregation of several objects' probabilities.
The network that fills and reads it is fusionseg.tsn.model."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass
class Memory:
    """Reference frames: keys (shared by the objects) and, per object, values and instance kernels."""

    keys: list[torch.Tensor] = field(default_factory=list)  # each (1 or B, C_k, h, w)
    values: list[torch.Tensor] = field(default_factory=list)  # each (B, C_v, h, w)
    kernels: list[torch.Tensor] = field(default_factory=list)  # each (B, HEAD_PARAMS)
    centroids: list[torch.Tensor] = field(default_factory=list)  # each (B, 2): x, y in feature cells
    present: list[torch.Tensor] = field(default_factory=list)  # each (B,) float 0/1

    def flat_keys(self) -> torch.Tensor:
        """(b, C_k, T*h*w): every memory position."""
        return torch.stack(self.keys, dim=2).flatten(2)

    def flat_values(self) -> torch.Tensor:
        return torch.stack(self.values, dim=2).flatten(2)


def affinity(memory_keys: torch.Tensor, query_keys: torch.Tensor, top_k: int | None = None) -> torch.Tensor:
    """Soft assignment of each query position to memory positions: (b, C, M), (b, C, Q) -> (b, M, Q).

    Softmax over memory of -||q - m||^2 / sqrt(C). ||q||^2 is the same for every memory position of a
    query, so it cancels in the softmax and is not computed. With `top_k`, only each query's k most
    similar memory positions get weight (the rest exactly 0).
    """
    scale = math.sqrt(memory_keys.shape[1])
    similarity = 2 * memory_keys.transpose(1, 2) @ query_keys - memory_keys.pow(2).sum(1).unsqueeze(2)
    similarity = similarity / scale
    if top_k is None or top_k >= similarity.shape[1]:
        return similarity.softmax(dim=1)
    values, indices = similarity.topk(top_k, dim=1)
    return torch.zeros_like(similarity).scatter_(1, indices, values.softmax(dim=1))


def aggregate(probs: torch.Tensor) -> torch.Tensor:
    """Soft aggregation of K objects' independent probabilities (K, ...) -> (K + 1, ...), background first.

    Background = prod(1 - p_k); every probability becomes odds, and a softmax over the K + 1 logits
    makes them sum to one, so overlapping objects compete instead of both claiming a pixel.
    """
    with_background = torch.cat([torch.prod(1 - probs, dim=0, keepdim=True), probs]).clamp(1e-7, 1 - 1e-7)
    return torch.log(with_background / (1 - with_background)).softmax(dim=0)
