"""Offline SegFlow training: alternating segmentation and flow iterations with the shared Trainer.

The objective is L_s + lambda L_f; a batch carries one kind of label, so iterations alternate between
segmentation batches (L_s) and flow batches (lambda L_f), as the schedule says. A segmentation
iteration trains everything L_s reaches: the backbone, the score maps and, through the flow features
the score maps read (flow_to_seg), the flow branch. A flow iteration trains the flow branch (with its
weights on the segmentation features) and keeps the backbone a fixed feature source, as the authors'
release keeps the other branch fixed: the backbone's backward pass is most of an iteration's cost and
flow iterations are the more frequent ones. So lambda weighs flow supervision against the segmentation
loss in the flow branch's parameters.

Optimiser: AdamW (FlowNet trains with Adam; a from-scratch FlowNetS barely moved in 150 SGD steps at
any stable rate, measured on synthetic clips), the pretrained backbone at `backbone_lr_scale` of the
rate, poly decay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from fusionseg.segflow.data import Indexable, JointBatches
from fusionseg.segflow.losses import balanced_cross_entropy, multiscale_epe
from fusionseg.segflow.model import SegFlowNet
from fusionseg.devices import resolve_device
from fusionseg.train.loop import Trainer, default_optimizer


class JointObjective(nn.Module):
    """The training view of a SegFlowNet: forward(frame t, frame t+1, target) is the batch's loss.

    The target says the task: (B, H, W) class labels for segmentation, (B, 3, H, W) (u, v, valid) for
    flow. Its state (what checkpoints hold) is exactly the network's, so checkpoints load into a plain
    SegFlowNet.
    """

    def __init__(self, net: SegFlowNet, flow_weight: float) -> None:
        super().__init__()
        self.net = net
        self.arch = net.arch
        self.flow_weight = flow_weight

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dim() == 3:
            return balanced_cross_entropy(self.net.segment(frame0, frame1), target)
        predictions = self.net.estimate_flow(frame0, frame1, train_seg=False)
        return self.flow_weight * multiscale_epe(predictions, target[:, :2], target[:, 2] > 0)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict:
        return self.net.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        return self.net.load_state_dict(state_dict, strict=strict, assign=assign)


def the_loss(loss: torch.Tensor, _target: torch.Tensor) -> torch.Tensor:
    """The objective computes its loss itself; the Trainer's loss function passes it through."""
    return loss


def train_segflow(
    segmentation: Indexable, flow: Indexable, params: dict, out: str | Path, data_identity: dict[str, str] | None = None
) -> None:
    """Train a SegFlow model on segmentation samples and flow samples; writes `out` (resumable: a
    resume file written for other `data_identity`, parameters or architecture is not used)."""
    torch.manual_seed(params["seed"])
    net = SegFlowNet(params["backbone"], params["weights"], params["exchange"], params["flow_width"])
    objective = JointObjective(net, params["lambda"])
    optimizer = default_optimizer(net, params, pretrained=net.backbone, kind="adamw")
    trainer = Trainer(objective, params, out, resolve_device(params["device"]), optimizer, data_identity)
    trainer.fit(JointBatches(segmentation, flow, params), the_loss)
