"""The FusionSeg fusion layer: 24 trainable parameters combining the two streams' outputs.

    A = ReLU(conv_a(appearance)),  M = ReLU(conv_m(motion)),
    J = ReLU(conv_ja(appearance)) * ReLU(conv_jm(motion)),   output = max(A, M, J) element-wise,

with four 2->2 1x1 convolutions with bias (4 x 6 = 24 parameters), trained with the streams frozen.

Input choice: stream outputs are stored on disk as float16 foreground probabilities p, so the
fusion's 2-channel inputs are the streams' log-softmax outputs recomputed from p:
(log(1 - p), log(p)), with p clamped to [EPS, 1 - EPS] because float16 rounds confident pixels to
exactly 0 or 1. A log-softmax is the logits up to a per-pixel constant, the closest thing to the
paper's raw stream scores that the stored probabilities determine.
"""

from __future__ import annotations

import torch
from torch import nn

EPS = 1e-4


def log_probabilities(prob: torch.Tensor) -> torch.Tensor:
    """(N, H, W) foreground probability -> (N, 2, H, W) (log background, log foreground)."""
    p = prob.float().clamp(EPS, 1 - EPS)
    return torch.stack([torch.log1p(-p), torch.log(p)], dim=1)


class FusionModel(nn.Module):
    """Inputs: two (N, 2, H, W) log-probability maps. Output: (N, 2, H, W) scores (softmax gives p)."""

    arch = {"kind": "fusion"}

    def __init__(self) -> None:
        super().__init__()
        self.appearance = nn.Conv2d(2, 2, 1)
        self.motion = nn.Conv2d(2, 2, 1)
        self.joint_appearance = nn.Conv2d(2, 2, 1)
        self.joint_motion = nn.Conv2d(2, 2, 1)
        for conv in (self.appearance, self.motion, self.joint_appearance, self.joint_motion):
            _init_as_passthrough(conv)

    def branches(self, appearance: torch.Tensor, motion: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The three branches A, M and J before the max."""
        a = torch.relu(self.appearance(appearance))
        m = torch.relu(self.motion(motion))
        j = torch.relu(self.joint_appearance(appearance)) * torch.relu(self.joint_motion(motion))
        return a, m, j

    def forward(self, appearance: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        a, m, j = self.branches(appearance, motion)
        return torch.maximum(torch.maximum(a, m), j)


def _init_as_passthrough(conv: nn.Conv2d) -> None:
    """Map (log(1-p), log(p)) to (-log p, -log(1-p)): non-negative (alive after the ReLU), and its
    softmax is p again, so each branch starts out reproducing its stream."""
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[0.0, -1.0], [-1.0, 0.0]]).view(2, 2, 1, 1))
        conv.bias.zero_()
