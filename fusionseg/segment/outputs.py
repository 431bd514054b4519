"""One segmented sequence's outputs, from its probability files: masks at the source's native size,
overlay videos of the source frames, and segment.json; the folder appears whole or not at all. The
folder's names and record are the contract of fusionseg.report.segmented, which the report reads."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fusionseg.errors import InputError
from fusionseg.infer.masks import fitted_size, write_masks
from fusionseg.io import FormerOutput, atomic_dir, read_mask
from fusionseg.report.figures import overlay
from fusionseg.report.segmented import MASKS, OVERLAY_STEM, RECORD, VIDEO_SUFFIX, output_names
from fusionseg.segment.video import write_video

# A sequence folder written before folders carried their marker: its segment.json says it is ours
# (overlays were MPEG-4 .mp4 files then).
FORMER_SEQUENCE = FormerOutput(RECORD, (f"{MASKS}*", f"{OVERLAY_STEM}*.mp4", f"{OVERLAY_STEM}*{VIDEO_SUFFIX}", RECORD))


@dataclass
class SegmentInputs:
    """What a sequence's outputs are made from.

    `frames_dir` is the sequence's working-size frame folder (its frame table gives the native size);
    `source_frames` yields the native-size RGB frames again, for the overlays. `probs` holds the chosen
    `method`'s probabilities; `intermediate` those it was made from (recorded; shown with stream
    overlays), `compared` other methods always shown beside it (the Saliency row)."""

    name: str
    frames_dir: Path
    method: str
    probs: Path
    source_frames: Callable[[], Iterator[np.ndarray]]
    fps: float
    threshold: float = 0.5
    intermediate: dict[str, Path] = field(default_factory=dict)
    compared: dict[str, Path] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


def write_segment_outputs(inputs: SegmentInputs, out_dir: str | Path, stream_overlays: bool = False) -> dict:
    """Masks and overlay videos of the chosen method, of the compared ones and, with `stream_overlays`,
    of the intermediate ones, and segment.json, into `out_dir`; returns the record written to segment.json."""
    from fusionseg import __version__
    from fusionseg.infer.probs import probs_shape, read_probs_attrs

    if stream_overlays and not inputs.intermediate:
        raise InputError(f"{inputs.name}: stream overlays need the probabilities {inputs.method} was made from")
    shown = {inputs.method: inputs.probs, **inputs.compared, **(inputs.intermediate if stream_overlays else {})}
    for probs in shown.values():  # each must be this sequence's; all give the source's size
        size = fitted_size(inputs.frames_dir, probs_shape(probs), probs)
    every = {inputs.method: inputs.probs, **inputs.intermediate, **inputs.compared}
    with atomic_dir(out_dir, "segmented sequence", [inputs.frames_dir, *every.values()], FORMER_SEQUENCE) as tmp:
        counts = {}
        for method, probs in shown.items():
            masks, video = output_names(method, inputs.method)
            counts[method] = write_masks(probs, tmp / masks, inputs.threshold, size)
            _overlay_video(inputs, tmp / masks, tmp / video)
        record = {
            "name": inputs.name,
            "method": inputs.method,
            "shown": list(shown),
            "frames": counts[inputs.method],
            "source_size": list(size),
            "working_size": _working_size(inputs.frames_dir),
            "fps": inputs.fps,
            "threshold": inputs.threshold,
            "outputs": sorted(p.name for p in tmp.iterdir()) + [RECORD],
            "model_sha256": {method: read_probs_attrs(probs).get("model_sha256") for method, probs in every.items()},
            **inputs.provenance,
            "fusionseg_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def _overlay_video(inputs: SegmentInputs, masks_dir: Path, out: Path) -> None:
    """The source frames with the masks of `masks_dir` tinted and outlined, as a video."""
    mask_paths = sorted(masks_dir.glob("*.png"))

    def frames() -> Iterator[np.ndarray]:
        source = inputs.source_frames()
        for index, mask_path in enumerate(tqdm(mask_paths, desc=f"overlay {inputs.name}", unit="frame", leave=False)):
            frame = next(source, None)
            if frame is None:
                raise InputError(f"{inputs.name}: the source has {index} frames, the masks {len(mask_paths)}")
            mask = read_mask(mask_path)
            if mask.shape != frame.shape[:2]:
                raise InputError(
                    f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]}, source frame {index} is {frame.shape[1]}x{frame.shape[0]}"
                )
            yield overlay(frame, mask)

    write_video(out, frames(), inputs.fps)


def _working_size(frames_dir: Path) -> list[int]:
    """(width, height) the networks saw: the working-size frames' own size."""
    from fusionseg.datasets.layout import Sequence

    first = Sequence.from_frames_dir(frames_dir).table().iloc[0]
    return [int(first["width"]), int(first["height"])]
