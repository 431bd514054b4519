"""SegFlow's two losses: the class-balanced segmentation cross-entropy and the multi-scale flow EPE."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from fusionseg.segflow.model import FLOW_SCALE
from fusionseg.train.data import IGNORE

# FlowNet's weights of the predictions at strides 64, 32, 16, 8 and 4 (the finest counts most).
SCALE_WEIGHTS = (0.005, 0.01, 0.02, 0.08, 0.32)


def balanced_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_s = -(1 - w) sum_fg log p - w sum_bg log(1 - p), w = the foreground's share of the batch's
    labelled pixels (IGNORE excluded), so the rarer class weighs more.

    Divided by the total weight, which makes it the mean of the per-class mean losses: its scale does
    not depend on the crop size or the object size. A batch with one class only has nothing to balance
    and gets the plain mean cross-entropy.
    """
    labelled = target != IGNORE
    foreground = (target == 1) & labelled
    background = (target == 0) & labelled
    log_p = F.log_softmax(logits.float(), dim=1)
    n_fg, n_bg = foreground.sum(), background.sum()
    if n_fg == 0 or n_bg == 0:
        return F.cross_entropy(logits.float(), target, ignore_index=IGNORE)
    w = n_fg / (n_fg + n_bg)
    weighted = -(1 - w) * log_p[:, 1][foreground].sum() - w * log_p[:, 0][background].sum()
    total_weight = (1 - w) * n_fg + w * n_bg
    return weighted / total_weight


def downsample_flow(flow: torch.Tensor, valid: torch.Tensor, size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth (B, 2, H, W) at a coarser `size`: the mean of the valid flow in each cell (flow
    stays in full-resolution pixels, as the predictions are); a cell is valid if any pixel was."""
    weight = valid.unsqueeze(1).float()
    pooled_weight = F.adaptive_avg_pool2d(weight, size)
    pooled = F.adaptive_avg_pool2d(flow * weight, size) / pooled_weight.clamp(min=1e-6)
    return pooled, pooled_weight[:, 0] > 0


def end_point_error(prediction: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance (pixels) over valid pixels; (B, 2, H, W) flows, (B, H, W) bool valid."""
    distance = torch.linalg.vector_norm(prediction - flow, dim=1)
    return distance[valid].mean() if valid.any() else distance.sum() * 0


def multiscale_epe(predictions: Sequence[torch.Tensor], flow: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """L_f: FlowNet's weighted sum over scales of the EPE against the ground truth downsampled to each
    prediction (predictions in FLOW_SCALE units, strides 64..4; flow in pixels)."""
    if len(predictions) != len(SCALE_WEIGHTS):
        raise ValueError(f"expected {len(SCALE_WEIGHTS)} flow predictions, got {len(predictions)}")
    total = flow.new_zeros(())
    for weight, prediction in zip(SCALE_WEIGHTS, predictions):
        target, target_valid = downsample_flow(flow, valid, prediction.shape[-2:])
        total = total + weight * end_point_error(prediction.float() * FLOW_SCALE, target, target_valid)
    return total
