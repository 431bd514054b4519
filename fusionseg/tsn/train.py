"""Training TSN: pre-training on clips made from still images and synthetic video, then main training
on clips of annotated video, each phase a resumable, deterministic `fusionseg.train.loop.Trainer` run.

    <out>                  the final checkpoint (arch kind "tsn"), <out>.log.csv, <out>.resume.pt
    <stem>.pretrain.pt     the pre-trained network (reused while the parameters are unchanged),
                           with its own .log.csv and .resume.pt

Loss: bootstrapped binary cross-entropy (the hardest pixels only, their share falling from all to
`hard_pixel_fraction` over the `hard_pixel_warmup` part of a phase, as STCN) plus `iou_loss_weight`
times a soft mask-IoU loss. The maximum gap between a clip's frames follows `max_frame_gaps`,
switching at `frame_gap_milestones` (fractions of the phase): it grows, then shrinks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence as SequenceType

import torch
import torch.nn.functional as F

from fusionseg.config import section_params
from fusionseg.datasets.synthetic import SynthParams
from fusionseg.devices import resolve_device
from fusionseg.errors import ConfigError, InputError
from fusionseg.models.checkpoint import read_checkpoint
from fusionseg.train.data import IGNORE
from fusionseg.train.loop import Trainer, data_identity, default_optimizer
from fusionseg.tsn.data import AnnotatedStills, ClipMix, StillClips, VideoClips, clip_batch
from fusionseg.tsn.model import TSNModel, tsn_arch

log = logging.getLogger(__name__)
SECTION = "tsn"
# Synthetic pre-training clips: frames per clip, most objects, and width per unit of crop size.
SYNTH_FRAMES, SYNTH_OBJECTS, SYNTH_ASPECT = 12, 3, 4 / 3


def tsn_params(text: str | dict | None) -> dict:
    """The `tsn` config section (`--params` JSON): defaults filled, validated; errors name the key."""
    params = section_params(SECTION, text)
    if len(params["max_frame_gaps"]) != len(params["frame_gap_milestones"]) + 1:
        raise ConfigError(f"--params: {SECTION}.max_frame_gaps: needs one more entry than frame_gap_milestones")
    return params


def pretrain_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.pretrain{out.suffix}")


def max_frame_gap(params: dict, progress: float) -> int:
    """The largest frame gap allowed at `progress` (0..1) through a phase."""
    passed = sum(progress >= m for m in params["frame_gap_milestones"])
    return params["max_frame_gaps"][passed]


def hard_pixel_share(params: dict, progress: float) -> float:
    """Share of pixels the cross-entropy keeps (the hardest): 1, then falling linearly to the floor."""
    start, end = params["hard_pixel_warmup"]
    floor = params["hard_pixel_fraction"]
    if progress <= start:
        return 1.0
    if progress >= end:
        return floor
    return 1.0 - (1.0 - floor) * (progress - start) / (end - start)


def bootstrapped_bce(logits: torch.Tensor, target: torch.Tensor, share: float) -> torch.Tensor:
    """Mean binary cross-entropy of the hardest `share` of the valid pixels of the whole batch."""
    valid = target != IGNORE
    losses = F.binary_cross_entropy_with_logits(logits[valid], target[valid].float(), reduction="none")
    if share < 1.0:
        losses = losses.topk(max(1, int(losses.numel() * share)), sorted=False).values
    return losses.mean()


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft IoU of each frame's predicted mask with its target, averaged (ignored pixels left out)."""
    valid = (target != IGNORE).float()
    prob = torch.sigmoid(logits) * valid
    truth = (target == 1).float()
    intersection = (prob * truth).flatten(2).sum(2)
    union = (prob + truth - prob * truth).flatten(2).sum(2)
    return (1 - (intersection + 1) / (union + 1)).mean()


class Objective:
    """The batches and the loss of one phase; the loss's hard-pixel share follows the batch's iteration."""

    def __init__(self, mix: ClipMix, params: dict):
        self.mix = mix
        self.params = params
        self.progress = 0.0

    def batch(self, iteration: int) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        self.progress = iteration / self.params["iterations"]
        return clip_batch(self.mix, self.params, iteration, max_frame_gap(self.params, self.progress))

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        share = hard_pixel_share(self.params, self.progress)
        return bootstrapped_bce(logits, target, share) + self.params["iou_loss_weight"] * soft_iou_loss(logits, target)


def adamw(model: TSNModel, params: dict) -> torch.optim.Optimizer:
    """AdamW; ImageNet weights learn at `backbone_lr_scale` times the rate of the new layers. At 0 they
    are frozen instead, which also spares their backward pass (half the time of an iteration)."""
    names = model.pretrained_parameter_names()
    pretrained = [param for name, param in model.named_parameters() if name in names]
    if params["backbone_lr_scale"] == 0:
        for param in pretrained:
            param.requires_grad_(False)
    return default_optimizer(model, params, pretrained=pretrained, kind="adamw")


def training_sources(
    frames_dirs: SequenceType[str | Path], image_manifests: SequenceType[str | Path], params: dict
) -> tuple[ClipMix, ClipMix]:
    """(pre-training mix, main mix): stills (image caches, the annotated frames) and synthetic video,
    then the annotated video alone."""
    from fusionseg.datasets.image_cache import ImageMaskSamples

    videos = VideoClips.from_frames_dirs(frames_dirs, params["frames_per_clip"])
    stills = [StillClips(ImageMaskSamples(m)) for m in image_manifests] + [StillClips(AnnotatedStills(videos))]
    crop = params["crop_size"]
    if params["synthetic_clips"]:
        synth = SynthParams(SYNTH_FRAMES, crop, round(crop * SYNTH_ASPECT), SYNTH_OBJECTS, params["seed"])
        stills.append(VideoClips.synthetic(params["synthetic_clips"], synth, params["frames_per_clip"]))
    return ClipMix(stills), ClipMix([videos])


def train_tsn(frames_dirs: SequenceType[str | Path], image_manifests: SequenceType[str | Path], params: dict, out: str | Path) -> None:
    """Pre-train (unless `pretrain_iterations` is 0), then train on the annotated video; writes `out`."""
    if not frames_dirs:
        raise InputError("train-tsn: give --frames (annotated sequences)")
    pretrain_mix, main_mix = training_sources(frames_dirs, image_manifests, params)
    device = resolve_device(params["device"])
    torch.manual_seed(params["seed"])
    model = TSNModel(tsn_arch(params), params["weights"])
    identity = data_identity(frames_dirs, image_manifests)
    if params["pretrain_iterations"]:
        _pretrain(model, pretrain_mix, params, out, device, identity)
    objective = Objective(main_mix, params)
    Trainer(model, params, out, device, adamw(model, params), identity).fit(objective.batch, objective.loss)


def _pretrain(
    model: TSNModel, mix: ClipMix, params: dict, out: str | Path, device: torch.device, identity: dict[str, str]
) -> None:
    """Run the pre-training phase, or load its result when an earlier run finished it with these parameters."""
    phase = {**params, "iterations": params["pretrain_iterations"]}
    path = pretrain_path(out)
    if path.is_file():
        payload = read_checkpoint(path)
        if payload["config"] == phase and payload["arch"] == dict(model.arch) and payload.get("data_identity") == identity:
            log.info("%s: pre-training already done with these parameters; reusing it", path)
            model.load_state_dict(payload["model"])
            return
    objective = Objective(mix, phase)
    Trainer(model, phase, path, device, adamw(model, phase), identity).fit(objective.batch, objective.loss)
