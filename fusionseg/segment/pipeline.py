"""`fusionseg segment`: the workflow's steps for one video, in one process, with a model bundle.

frames (shrunk to the bundle's working size) -> flow (the bundle's method, parameters and colour
coding) -> appearance and motion probabilities -> fusion -> masks at the source's size, overlay video,
segment.json. Intermediate files live in a hidden work folder beside the outputs and go away with
it; a sequence's folder appears only when everything in it is complete.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from fusionseg.datasets.layout import numbered_images
from fusionseg.datasets.writer import ExtractOptions, write_sequence
from fusionseg.flow.sequence import compute_sequence_flow, encode_flow
from fusionseg.infer.run import infer_joint, infer_stream
from fusionseg.io import atomic_file, check_replaceable, temporary_path, utf8_path
from fusionseg.models.bundle import Bundle, extract_models
from fusionseg.segment.outputs import FORMER_SEQUENCE, RECORD, SegmentInputs, write_segment_outputs
from fusionseg.segment.sources import Source, check_has_two_frames
from fusionseg.segment.video import DEFAULT_FPS

REPORT = "report.html"


@dataclass(frozen=True)
class SegmentOptions:
    """How to run: working size (None: the bundle's), device, batches, threshold, frame rate for
    sources without one, and whether the streams get their own masks and overlays."""

    max_side: int | None = None
    device: str = "auto"
    batch_size: int = 4
    threshold: float = 0.5
    fps: float | None = None
    stream_overlays: bool = False


@dataclass
class SegmentResult:
    name: str
    out_dir: Path
    frames: int
    seconds: float
    step_seconds: dict[str, float] = field(default_factory=dict)


def segment_sources(sources: list[Source], out_root: str | Path, bundle: Bundle,
                    options: SegmentOptions = SegmentOptions()) -> list[SegmentResult]:
    """Segment every source into `out_root/<name>/`, then write `out_root/report.html` (contact sheets of
    every segmented sequence there). A failure leaves no folder for its source (nor an `out_root` that
    this call created and nothing was written to)."""
    out_root = Path(utf8_path(out_root, "the overlay videos and the report cannot take"))
    created = not out_root.exists()
    try:
        for source in sources:
            check_has_two_frames(source)
            check_replaceable(out_root / source.name, [source.path], FORMER_SEQUENCE)
        with tempfile.TemporaryDirectory(prefix="fusionseg-models-") as models_dir:
            models = extract_models(bundle, models_dir)
            results = [
                segment_source(source, out_root, bundle, models, options)
                for source in tqdm(sources, desc="segment", unit="video", disable=len(sources) < 2)
            ]
        write_report(out_root)
    except BaseException:
        if created and out_root.is_dir() and not any(out_root.iterdir()):
            out_root.rmdir()
        raise
    return results


def segment_source(source: Source, out_root: Path, bundle: Bundle, models: dict[str, Path],
                   options: SegmentOptions) -> SegmentResult:
    """One source through every step into `out_root/<source.name>/`."""
    started, steps = time.perf_counter(), {}
    flow = bundle.flow
    max_side = options.max_side or bundle.max_side
    with _work_dir(out_root, source.name) as work:
        with _timed(steps, "frames"):
            sequence = write_sequence(source.raw, work / "frames", ExtractOptions(max_side=max_side))
        with _timed(steps, "flow"):
            compute_sequence_flow(sequence.frames_dir, work / "flow.h5", flow.method, flow.params, options.device, options.batch_size)
            encode_flow(work / "flow.h5", work / "flow_rgb", flow.normalization, flow.max_flow)
        probs = {stream: work / f"{stream}.h5" for stream in ("appearance", "motion", "joint")}
        with _timed(steps, "appearance"):
            infer_stream(models["appearance"], "appearance", sequence.frame_paths(), probs["appearance"], options.batch_size, options.device)
        with _timed(steps, "motion"):
            infer_stream(models["motion"], "motion", numbered_images(work / "flow_rgb"), probs["motion"], options.batch_size, options.device)
        with _timed(steps, "fusion"):
            infer_joint(models["fusion"], probs["appearance"], probs["motion"], probs["joint"], options.batch_size, options.device)
        inputs = SegmentInputs(
            name=source.name,
            frames_dir=sequence.frames_dir,
            joint_probs=probs["joint"],
            source_frames=source.native_frames,
            fps=source.fps or options.fps or DEFAULT_FPS,
            threshold=options.threshold,
            stream_probs={stream: probs[stream] for stream in ("appearance", "motion")},
            provenance={
                "source": str(source.path),
                "models": bundle.provenance(),
                **flow.as_dict(),
                "max_side": max_side,
                "step_seconds": {step: round(s, 2) for step, s in steps.items()},
            },
        )
        record = write_segment_outputs(inputs, out_root / source.name, options.stream_overlays)
    return SegmentResult(source.name, out_root / source.name, record["frames"], time.perf_counter() - started, steps)


def write_report(out_root: str | Path) -> Path:
    """`out_root/report.html`: a contact sheet of every segmented sequence folder in `out_root`."""
    from fusionseg.report.build import segment_section
    from fusionseg.report.html import page

    out_root = Path(out_root)
    folders = sorted(p for p in out_root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / RECORD).is_file())
    path = out_root / REPORT
    document = page("FusionSeg: segmented videos", f"{len(folders)} sequence(s) in {out_root}",
                    [("segment", "Segmented videos", segment_section(folders))])  # fmt: skip
    with atomic_file(path) as tmp:
        tmp.write_text(document, encoding="utf-8")
    return path


@contextlib.contextmanager
def _work_dir(out_root: Path, name: str) -> Iterator[Path]:
    """A hidden scratch folder in `out_root` (same disk as the outputs), removed whatever happens. It is
    named as a temporary of this process, so a later run removes the one a killed run left."""
    work = temporary_path(out_root / f"{name}.work", directory=True)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _timed(steps: dict[str, float], step: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    steps[step] = time.perf_counter() - started
