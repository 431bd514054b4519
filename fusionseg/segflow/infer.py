"""SegFlow inference on a sequence: foreground probabilities and, optionally, the flow branch's flow.

Frame i is paired with its partner of the pipeline's flow convention (i+1; the last frame i-1), so the
flow output is directly a compute-flow file (N flows for N frames). The semi-supervised mode first
fine-tunes a copy of the model on the sequence's first annotated frame, and on no other.
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from fusionseg.datasets.layout import Sequence
from fusionseg.devices import resolve_device
from fusionseg.errors import InputError
from fusionseg.flow.sequence import CONVENTION, frame_pairs
from fusionseg.infer.probs import write_probs
from fusionseg.io import file_sha256, hdf5_output, read_image, read_mask
from fusionseg.models.backbones import freeze_batchnorm
from fusionseg.models.checkpoint import model_from_checkpoint, read_checkpoint
from fusionseg.segflow.data import read_pair, segmentation_batch
from fusionseg.segflow.losses import balanced_cross_entropy
from fusionseg.segflow.model import SegFlowNet, segflow_from_arch
from fusionseg.train.data import iteration_generator
from fusionseg.train.loop import default_optimizer, poly_lr

METHOD = "segflow"


def infer_segflow(
    model_path: str | Path,
    frames_dir: str | Path,
    out: str | Path,
    flow_out: str | Path | None = None,
    online_iterations: int = 0,
    batch_size: int = 2,
    device: str = "auto",
    online_lr: float | None = None,
) -> None:
    """Write the sequence's foreground probabilities (and its flow with `flow_out`), atomically.

    Online fine-tuning uses `online_lr`, or the one in the checkpoint's config when None."""
    target = resolve_device(device)
    checkpoint = read_checkpoint(model_path)
    net = model_from_checkpoint(checkpoint, model_path, "segflow", build=segflow_from_arch)
    sequence = Sequence.from_frames_dir(frames_dir)
    paths = sequence.frame_paths()
    if len(paths) < 2:
        raise InputError(f"{sequence.frames_dir}: only 1 frame; SegFlow needs frame pairs")
    if online_iterations > 0:
        params = {**checkpoint["config"], **({"online_lr": online_lr} if online_lr is not None else {})}
        net = online_finetune(net, sequence, online_iterations, params, target)
    net = net.to(target).eval()
    height, width = read_image(paths[0]).shape[:2]
    sha = file_sha256(model_path)
    attrs = {"online_iterations": str(online_iterations)}
    with contextlib.ExitStack() as stack:
        flow_file = stack.enter_context(_flow_writer(flow_out, len(paths), (height, width), model_path, sha)) if flow_out else None
        batches = _probability_batches(net, paths, (height, width), batch_size, target, flow_file)
        write_probs(out, batches, len(paths), (height, width), METHOD, sha, attrs=attrs)


def _probability_batches(
    net: SegFlowNet, paths: list[Path], size: tuple[int, int], batch_size: int, device: torch.device, flow_file
) -> Iterator[np.ndarray]:
    """Foreground probabilities per batch of frames; the flow goes into `flow_file` on the way."""
    pairs = frame_pairs(len(paths))
    for start in tqdm(range(0, len(pairs), batch_size), desc=f"segflow {paths[0].parent.name}", unit="batch"):
        batch = []
        for i, j in pairs[start : start + batch_size]:
            frame0, frame1 = read_pair(paths[i], paths[j])
            if frame0.shape[:2] != size:
                raise InputError(f"{paths[i]}: frame is {frame0.shape[1]}x{frame0.shape[0]}, but {paths[0].name} is {size[1]}x{size[0]}")
            batch.append((frame0, frame1))
        frame0 = _to_tensor([b[0] for b in batch], device)
        frame1 = _to_tensor([b[1] for b in batch], device)
        with torch.inference_mode(), torch.autocast(device.type, enabled=device.type == "cuda"):
            output = net(frame0, frame1)
        if flow_file is not None:
            flow_file[start : start + len(batch)] = output.flow.float().permute(0, 2, 3, 1).cpu().numpy()
        yield output.logits.float().softmax(dim=1)[:, 1].cpu().numpy()


def _to_tensor(frames: list[np.ndarray], device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().to(device)


@contextlib.contextmanager
def _flow_writer(path: str | Path, frames: int, size: tuple[int, int], model_path: str | Path, sha: str):
    """The compute-flow file format (fusionseg.flow.sequence): dataset `flow` (N, H, W, 2) float32."""
    with hdf5_output(path) as handle:
        dataset = handle.create_dataset("flow", (frames, *size, 2), np.float32, chunks=(1, *size, 2), fletcher32=True)
        handle.attrs.update(
            method=METHOD, params=json.dumps({"model": str(model_path)}), convention=CONVENTION, model_sha256=sha
        )
        yield dataset


def online_finetune(
    net: SegFlowNet, sequence: Sequence, iterations: int, params: dict, device: torch.device | None = None
) -> SegFlowNet:
    """A copy of `net` whose segmentation branch is fine-tuned on the sequence's first annotated frame
    (with its partner frame); `net` itself is left untouched. BatchNorm stays frozen: the batches are
    crops of a single frame."""
    masks = sequence.mask_paths()
    if not masks:
        raise InputError(f"{sequence.masks_dir}: no annotated frame; online fine-tuning needs the first frame's mask")
    first = min(masks)
    paths = sequence.frame_paths()
    partner = dict(frame_pairs(len(paths)))[first]
    frame0, frame1 = read_pair(paths[first], paths[partner])
    mask = read_mask(masks[first])
    if mask.shape != frame0.shape[:2]:
        raise InputError(f"{masks[first]}: mask is {mask.shape[1]}x{mask.shape[0]} but its frame is {frame0.shape[1]}x{frame0.shape[0]}")
    tuned = copy.deepcopy(net).to(device or torch.device("cpu"))
    freeze_batchnorm(tuned.backbone)
    tuned.frozen_batchnorm = True
    _fit_first_frame(tuned, [(frame0, frame1, mask.astype(np.uint8))], iterations, params)
    return tuned.eval()


def _fit_first_frame(net: SegFlowNet, sample: list, iterations: int, params: dict) -> None:
    """The segmentation branch learns the one frame; the flow branch stays as trained (its flow is
    also an output, and one frame's segmentation loss has no business reshaping it)."""
    device = next(net.parameters()).device
    modules = [net.backbone, net.seg_head]
    optimizer = default_optimizer(modules, params, pretrained=net.backbone, lr=params["online_lr"], kind="adamw")
    net.train()
    for iteration in tqdm(range(iterations), desc="online fine-tuning", leave=False):
        lr = poly_lr(params["online_lr"], iteration, iterations, params["lr_power"])
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        generator = iteration_generator(params["seed"], iteration)
        (frame0, frame1, target), _ = segmentation_batch(sample, params["seg_batch_size"], params, generator)
        logits = net.segment(frame0.to(device), frame1.to(device), train_flow=False)
        loss = balanced_cross_entropy(logits, target.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
