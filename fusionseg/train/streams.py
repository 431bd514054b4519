"""Training the appearance and motion streams, and the fusion layer on top of them."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence as SequenceType

import numpy as np
import torch
import torch.nn.functional as F

from fusionseg.datasets.layout import Sequence
from fusionseg.errors import ConfigError, InputError
from fusionseg.models.backbones import freeze_stages
from fusionseg.models.fusion import FusionModel, log_probabilities
from fusionseg.models.stream import build_stream
from fusionseg.train.data import IGNORE, PrefetchedBatches, SampleSource, StreamBatches, iteration_generator
from fusionseg.devices import resolve_device
from fusionseg.train.loop import Trainer


def pixel_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, target, ignore_index=IGNORE)


def train_stream(
    stream: str, source: SampleSource, params: dict, out: str | Path, data_identity: dict[str, str] | None = None
) -> None:
    """Train one stream (appearance: RGB frames; motion: flow images) and write its checkpoint.

    `source` must be picklable when `params['loader_workers']` > 0 (workers prepare the batches).
    With `params['iterations']` 0 the checkpoint is the pretrained network untouched."""
    if params["iterations"] == 0 and (params["backbone"], params["weights"]) != ("u2netp", "duts"):
        raise ConfigError(
            f"{stream}: iterations 0 keeps the initial network as it is; only backbone u2netp with weights duts "
            f"starts with a trained head (got {params['backbone']} with weights {params['weights']})"
        )
    torch.manual_seed(params["seed"])
    model = build_stream(params["backbone"], params["weights"], stream, params["input_size"])
    freeze_stages(model.backbone, params["freeze_stages"])
    device = resolve_device(params["device"])
    trainer = Trainer(model, params, out, device, data_identity=data_identity)
    batch_fn = StreamBatches(source, params)
    with PrefetchedBatches(batch_fn, params["iterations"], params["loader_workers"], pin_memory=device.type == "cuda") as batches:
        trainer.fit(batches, pixel_cross_entropy)


class FusionData:
    """Annotated frames of the fusion_train sequences with both streams' stored probabilities."""

    def __init__(self, frames_dirs: SequenceType[str | Path], appearance: SequenceType[str | Path], motion: SequenceType[str | Path]):
        from fusionseg.infer.probs import read_probs

        if not (len(frames_dirs) == len(appearance) == len(motion)):
            raise InputError(
                f"train-fusion: {len(frames_dirs)} frame folder(s), {len(appearance)} appearance and "
                f"{len(motion)} motion probability file(s); the lists must be aligned"
            )
        self.frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for frames_dir, app_path, mot_path in zip(frames_dirs, appearance, motion):
            sequence = Sequence.from_frames_dir(frames_dir)
            app, mot = read_probs(app_path), read_probs(mot_path)
            _check_aligned(sequence, app_path, app, mot_path, mot)
            for index in sorted(sequence.mask_paths()):
                self.frames.append((app[index], mot[index], sequence.read_mask(index).astype(np.int64)))
        if not self.frames:
            raise InputError(f"{', '.join(map(str, frames_dirs))}: no annotated frames to train the fusion on")

    def batch(self, params: dict, iteration: int) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The fusion is per pixel, so frames of any size are joined into one (1, 2, 1, P) row of pixels."""
        generator = iteration_generator(params["seed"], iteration)
        picks = torch.randint(len(self.frames), (params["batch_size"],), generator=generator).tolist()
        app = torch.cat([torch.from_numpy(self.frames[i][0]).reshape(-1) for i in picks])
        mot = torch.cat([torch.from_numpy(self.frames[i][1]).reshape(-1) for i in picks])
        target = torch.cat([torch.from_numpy(self.frames[i][2]).reshape(-1) for i in picks])
        return (_pixel_row(app), _pixel_row(mot)), target.view(1, 1, -1)


def _pixel_row(prob: torch.Tensor) -> torch.Tensor:
    """P probabilities -> (1, 2, 1, P) log-probabilities, the fusion's input layout."""
    return log_probabilities(prob.view(1, 1, -1)).view(1, 2, 1, -1)


def train_fusion(data: FusionData, params: dict, out: str | Path, data_identity: dict[str, str] | None = None) -> None:
    """Train the 24 fusion parameters on stored stream outputs (the streams stay frozen by construction)."""
    torch.manual_seed(params["seed"])
    trainer = Trainer(FusionModel(), params, out, resolve_device(params["device"]), data_identity=data_identity)
    trainer.fit(lambda iteration: data.batch(params, iteration), pixel_cross_entropy)


def _check_aligned(sequence: Sequence, app_path, app: np.ndarray, mot_path, mot: np.ndarray) -> None:
    frames = sequence.frame_paths()
    height, width = sequence.read_frame(0).shape[:2]
    for path, probs in ((app_path, app), (mot_path, mot)):
        if probs.shape != (len(frames), height, width):
            raise InputError(
                f"{path}: probabilities are {probs.shape} but {sequence.frames_dir} has {len(frames)} frames of {width}x{height}"
            )
