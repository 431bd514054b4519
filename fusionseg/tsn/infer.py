"""Running a trained TSN over a sequence: from one frame's mask, forward and backward to every frame.

Semi-supervised: the mask is the first annotated frame's ground truth (object ids kept, one pass per
object). Automatic: the mask is a method's probabilities thresholded on one frame (e.g. FusionSeg's
joint output), chosen by `choose_seed_frame` unless given. Every `mem_every`-th frame joins the
memory with its predicted probabilities; objects are combined by soft aggregation per frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fusionseg.datasets.layout import Sequence, frame_name
from fusionseg.errors import InputError
from fusionseg.infer.masks import object_labels, resize_scores
from fusionseg.infer.probs import read_object_ids, read_probs, write_probs
from fusionseg.io import file_sha256
from fusionseg.models.checkpoint import model_from_checkpoint, read_checkpoint
from fusionseg.devices import resolve_device
from fusionseg.tsn.data import object_ids, read_labels
from fusionseg.tsn.memory import Memory, aggregate
from fusionseg.tsn.model import TSNModel

log = logging.getLogger(__name__)
SEED_THRESHOLD = 0.5
# An automatic seed mask must cover at least this share of the frame.
MIN_SEED_AREA = 0.001
# More ids than this in a first mask means grey levels (an anti-aliased mask), not objects.
MAX_OBJECTS = 50
ROUTING_NOTE = (
    "routing map W at stride 16: weight of the instance stream (1 - W: the pixel stream); on the seed "
    "frame, computed with that frame itself in memory"
)


@dataclass
class Seed:
    frame: int
    labels: np.ndarray  # (H, W) object ids at the frames' size
    object_ids: list[int]
    source: str

    def masks(self) -> torch.Tensor:
        """(K, 1, H, W) float one-hot masks, one per object."""
        return torch.stack([torch.from_numpy(self.labels == i) for i in self.object_ids]).float().unsqueeze(1)


def load_tsn(path: str | Path) -> tuple[TSNModel, dict]:
    """The network a TSN checkpoint describes, with its weights, and its training parameters."""
    payload = read_checkpoint(path)
    return model_from_checkpoint(payload, path, "tsn", build=TSNModel), payload["config"]


def ground_truth_seed(sequence: Sequence, frame_shape: tuple[int, int]) -> Seed:
    """The first annotated frame's mask, its object ids kept."""
    masks = sequence.mask_paths()
    if not masks:
        raise InputError(
            f"{sequence.masks_dir}: no annotated frame; semi-supervised TSN needs the first frame's mask "
            "(or give --seed-probs)"
        )
    first = min(masks)
    labels = read_labels(masks[first], frame_shape)
    ids = object_ids(labels)
    if not ids:
        raise InputError(f"{masks[first]}: the first annotated mask is empty; there is no object to propagate")
    if len(ids) > MAX_OBJECTS:
        raise InputError(
            f"{masks[first]}: {len(ids)} distinct mask values, too many for object ids (an anti-aliased mask? "
            "extract it with --mask-threshold)"
        )
    return Seed(first, labels, ids, f"ground truth {masks[first]}")


def probs_seeds(path: str | Path, seed_frame: str, frames: int, frame_shape: tuple[int, int], anchors: int = 1) -> list[Seed]:
    """Seeds from another method's probabilities: thresholded on frame `seed_frame` (an index), or, with
    'auto', on the `anchors` most trustworthy frames (`choose_seed_frames`)."""
    probs = read_probs(path)
    ids = read_object_ids(path)
    if len(probs) != frames:
        raise InputError(f"{path}: {len(probs)} frame(s) of probabilities, but the sequence has {frames}")
    foreground = probs if ids is None else probs.sum(axis=1)
    if seed_frame == "auto":
        chosen = choose_seed_frames(foreground, anchors, path)
    else:
        chosen = [_frame_index(seed_frame, frames, path)]
    return [_probs_seed(path, probs, ids, frame, frame_shape) for frame in chosen]


def _probs_seed(path: str | Path, probs: np.ndarray, ids: list[int] | None, frame: int, frame_shape: tuple[int, int]) -> Seed:
    size = (frame_shape[1], frame_shape[0])
    if ids is None:
        labels = (resize_scores(probs[frame], size) > SEED_THRESHOLD).astype(np.uint8)
        ids = [1]
    else:
        labels = object_labels(resize_scores(probs[frame], size), ids)
    present = [i for i in ids if (labels == i).any()]
    if not present:
        raise NoSeedError(f"{path}: frame {frame_name(frame)} has no foreground above {SEED_THRESHOLD} to start from")
    return Seed(frame, labels, present, f"probabilities {path}")


class NoSeedError(InputError):
    """The seed probabilities hold no object to propagate (the method that made them found none)."""


def choose_seed_frame(foreground: np.ndarray, path: str | Path = "seed probabilities") -> int:
    """The frame whose thresholded mask is most trustworthy without ground truth (`seed_scores`)."""
    return choose_seed_frames(foreground, 1, path)[0]


def choose_seed_frames(foreground: np.ndarray, count: int, path: str | Path = "seed probabilities") -> list[int]:
    """Up to `count` frames in time order, best `seed_scores` first, each at least N / (2 count) frames
    from those already chosen: anchors spread over the video, so that every frame has one nearby."""
    scores = seed_scores(foreground)
    if scores.max() < 0:
        raise NoSeedError(f"{path}: no frame has foreground above {SEED_THRESHOLD} to start from")
    spacing = max(1, len(scores) // (2 * count))
    chosen: list[int] = []
    for frame in np.argsort(-scores, kind="stable"):
        if scores[frame] < 0 or len(chosen) == count:
            break
        if all(abs(int(frame) - other) >= spacing for other in chosen):
            chosen.append(int(frame))
    return sorted(chosen)


def seed_scores(foreground: np.ndarray) -> np.ndarray:
    """How trustworthy each frame's thresholded mask is without ground truth: the product of confidence
    (mean |2p - 1|: how far the probabilities are from undecided) and stability (mean IoU of its mask
    with the neighbouring frames' masks: a mask its neighbours agree with is unlikely a one-frame
    error); -1 for masks covering less than 0.1% of the frame (not candidates)."""
    masks = foreground > SEED_THRESHOLD
    confidence = np.abs(2 * foreground - 1).reshape(len(foreground), -1).mean(axis=1)
    stability = np.ones(len(masks))
    if len(masks) > 1:
        neighbour_iou = np.array([_iou(a, b) for a, b in zip(masks[:-1], masks[1:])])
        stability = np.array([np.mean(neighbour_iou[max(t - 1, 0) : t + 1]) for t in range(len(masks))])
    score = confidence * stability
    score[masks.reshape(len(masks), -1).mean(axis=1) < MIN_SEED_AREA] = -1
    return score


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def _frame_index(text: str, frames: int, path: str | Path) -> int:
    try:
        index = int(text)
    except ValueError:
        raise InputError(f"--seed-frame {text}: expected 'auto' or a frame index") from None
    if not 0 <= index < frames:
        raise InputError(f"--seed-frame {index}: {path} has frames 0..{frames - 1}")
    return index


@torch.inference_mode()
def propagate(
    model: TSNModel, frames: np.ndarray, seed: Seed, mem_every: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-object probabilities (N, K, H, W) from the seed frame forward, then backward, and the
    routing map (N, h, w) (None for the pixel stream alone). The seed frame keeps its given masks;
    its routing map is the one the network computes with that frame in memory."""
    count, height, width = frames.shape[:3]
    masks = seed.masks()
    probs = np.zeros((count, len(seed.object_ids), height, width), dtype=np.float32)
    probs[seed.frame] = masks[:, 0].numpy()
    routing: np.ndarray | None = None
    bar = tqdm(total=count, desc="tsn propagate", leave=False)
    for backward, order in enumerate((range(seed.frame, count), range(seed.frame, -1, -1))):
        if backward and len(order) < 2:
            continue
        memory = Memory()
        for step, index in enumerate(order):
            frame = _frame_tensor(frames, index, device)
            query = model.encode_keys(frame)
            if step == 0:
                model.memorise(memory, frame, query, masks.to(device))
                if backward:
                    continue
            logits, routing_map = model.segment(query, memory, (height, width))
            if routing_map is not None:
                if routing is None:
                    routing = np.zeros((count, *routing_map.shape[-2:]), dtype=np.float32)
                routing[index] = routing_map[0, 0].cpu().numpy()
            if step > 0:
                object_probs = aggregate(torch.sigmoid(logits[:, 0]))[1:]
                probs[index] = object_probs.cpu().numpy()
                if step % mem_every == 0:
                    model.memorise(memory, frame, query, object_probs[:, None])
            bar.update()
    bar.close()
    return probs, routing


@torch.inference_mode()
def propagate_from_anchors(
    model: TSNModel, frames: np.ndarray, seeds: list[Seed], mem_every: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-object probabilities (N, K, H, W) and routing maps (N, h, w) of one pass from the first frame
    to the last, reading a memory that starts with every anchor's mask (K: the anchors' objects
    together); every `mem_every`-th predicted frame then joins it. Unlike `propagate` the anchor frames
    are predicted too: their masks are another method's guess, not ground truth."""
    count, height, width = frames.shape[:3]
    ids = sorted({i for seed in seeds for i in seed.object_ids})
    memory = Memory()
    for seed in seeds:
        frame = _frame_tensor(frames, seed.frame, device)
        masks = torch.stack([torch.from_numpy(seed.labels == i) for i in ids]).float().unsqueeze(1)
        model.memorise(memory, frame, model.encode_keys(frame), masks.to(device))
    probs = np.zeros((count, len(ids), height, width), dtype=np.float32)
    routing: np.ndarray | None = None
    for index in tqdm(range(count), desc="tsn anchored", leave=False):
        frame = _frame_tensor(frames, index, device)
        query = model.encode_keys(frame)
        logits, routing_map = model.segment(query, memory, (height, width))
        if routing_map is not None:
            if routing is None:
                routing = np.zeros((count, *routing_map.shape[-2:]), dtype=np.float32)
            routing[index] = routing_map[0, 0].cpu().numpy()
        object_probs = aggregate(torch.sigmoid(logits[:, 0]))[1:]
        probs[index] = object_probs.cpu().numpy()
        if index % mem_every == 0:
            model.memorise(memory, frame, query, object_probs[:, None])
    return probs, routing


def _frame_tensor(frames: np.ndarray, index: int, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(frames[index]).permute(2, 0, 1)[None].float().to(device)


def infer_tsn(
    model_path: str | Path,
    frames_dir: str | Path,
    out: str | Path,
    seed_probs: str | Path | None = None,
    seed_frame: str = "auto",
    routing_out: str | Path | None = None,
    device: str | None = None,
    top_k: int | None = None,
    mem_every: int | None = None,
    anchors: int = 1,
) -> list[Seed]:
    """Segment a sequence with TSN and write its probabilities (and routing maps); returns the seeds used.
    `device`, `top_k` and `mem_every` default to the values the model was trained with.

    With `seed_probs`, `seed_frame` 'auto' and `anchors` > 1, the memory starts with that many frames
    of those probabilities (`propagate_from_anchors`); otherwise TSN propagates one frame's mask."""
    model, config = load_tsn(model_path)
    mem_every = mem_every or config["mem_every"]
    if routing_out is not None and not model.has_instance:
        raise InputError(f"{model_path}: a pixel-stream-only model (streams: pixel) has no routing map to write")
    target = resolve_device(device or config["device"])
    model.top_k = top_k or config["top_k"]
    model.to(target)
    sequence = Sequence.from_frames_dir(frames_dir)
    frames = sequence.read_frames()
    shape = frames.shape[1:3]
    if seed_probs is None:
        seeds = [ground_truth_seed(sequence, shape)]
        if seeds[0].frame >= len(frames):
            raise InputError(f"{sequence.masks_dir}: mask {frame_name(seeds[0].frame)} has no frame (sequence has {len(frames)})")
    else:
        try:
            seeds = probs_seeds(seed_probs, seed_frame, len(frames), shape, anchors)
        except NoSeedError as error:
            # Nothing found by the seeding method is a result (no object), not a failure: all background.
            log.warning("%s: all background (%s)", sequence.name, error)
            attrs = {"seed_frame": "-1", "seed_source": f"none: {error}", "streams": model.arch["streams"]}
            empty = np.zeros((len(frames), *shape), dtype=np.float32)
            write_probs(out, [empty], len(frames), shape, "tsn", file_sha256(model_path), attrs=attrs)
            return [Seed(-1, np.zeros(shape, dtype=np.uint8), [], f"none ({error})")]
    seed_frames = ",".join(frame_name(seed.frame) for seed in seeds)
    object_count = len({i for seed in seeds for i in seed.object_ids})
    log.info("%s: seed frame(s) %s (%s), %d object(s)", sequence.name, seed_frames, seeds[0].source, object_count)
    if len(seeds) == 1:
        probs, routing = propagate(model, frames, seeds[0], mem_every, target)
    else:
        probs, routing = propagate_from_anchors(model, frames, seeds, mem_every, target)
    sha = file_sha256(model_path)
    ids = sorted({i for seed in seeds for i in seed.object_ids})
    attrs = {"seed_frame": ",".join(str(seed.frame) for seed in seeds), "seed_source": seeds[0].source, "streams": model.arch["streams"]}
    if routing_out is not None:
        write_probs(routing_out, [routing], len(frames), routing.shape[1:], "tsn-routing", sha, attrs={**attrs, "note": ROUTING_NOTE})
    several = len(ids) > 1
    write_probs(
        out, [probs if several else probs[:, 0]], len(frames), shape, "tsn", sha,
        object_ids=ids if several else None, attrs=attrs,
    )  # fmt: skip
    return seeds
