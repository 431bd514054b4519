"""`fusionseg segment`: the workflow's steps for one video, in one process, with a model bundle.

frames (shrunk to the bundle's working size) -> the steps the chosen method needs (flow with the
bundle's method, parameters and colour coding; appearance and motion probabilities; fusion; TSN seeded
by Ours-Joint) and, for comparison, Saliency (U²-Netp per frame) -> masks at the source's size, overlay
videos, segment.json. Intermediate files live in a hidden work folder beside the outputs and go away
with it; a sequence's folder appears only when everything in it is complete.
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

from fusionseg.baselines.saliency import write_saliency
from fusionseg.bundles.manifest import METHOD_MODELS, Bundle
from fusionseg.bundles.verify import extract_models
from fusionseg.datasets.layout import Sequence, numbered_images
from fusionseg.datasets.writer import ExtractOptions, write_sequence
from fusionseg.flow.sequence import compute_sequence_flow, encode_flow
from fusionseg.infer.run import infer_joint, infer_stream
from fusionseg.io import atomic_file, check_replaceable, temporary_path, utf8_path
from fusionseg.segment.outputs import FORMER_SEQUENCE, RECORD, SegmentInputs, write_segment_outputs
from fusionseg.segment.sources import Source, check_has_two_frames
from fusionseg.segment.video import DEFAULT_FPS
from fusionseg.tsn.infer import infer_tsn

REPORT = "report.html"
SALIENCY = "saliency"
# The steps after `frames` each method runs, in order; each but flow makes the probabilities of STEP_PROBS.
METHOD_STEPS = {
    "saliency": ("saliency",),
    "appearance": ("appearance",),
    "motion": ("flow", "motion"),
    "joint": ("flow", "appearance", "motion", "fusion"),
    "joint-tsn": ("flow", "appearance", "motion", "fusion", "tsn"),
}
STEP_PROBS = {"saliency": "saliency", "appearance": "appearance", "motion": "motion", "fusion": "joint", "tsn": "joint-tsn"}


def made_from(method: str) -> list[str]:
    """The methods whose probabilities `method` is made from (its last step makes its own)."""
    return [STEP_PROBS[step] for step in METHOD_STEPS[method][:-1] if step in STEP_PROBS]


@dataclass(frozen=True)
class SegmentOptions:
    """How to run: the method, working size (None: the bundle's), device, batches, threshold, frame rate
    for sources without one, whether the Saliency row is computed beside the method, and whether the
    probabilities the method was made from get their own masks and overlays."""

    method: str = "joint"
    max_side: int | None = None
    device: str = "auto"
    batch_size: int = 4
    threshold: float = 0.5
    fps: float | None = None
    saliency: bool = True
    stream_overlays: bool = False

    def steps(self) -> tuple[str, ...]:
        """The steps after `frames`: the method's, and Saliency's for comparison unless it is left out."""
        compare = (SALIENCY,) if self.saliency and self.method != SALIENCY else ()
        return METHOD_STEPS[self.method] + compare


@dataclass
class SegmentResult:
    name: str
    out_dir: Path
    frames: int
    seconds: float
    step_seconds: dict[str, float] = field(default_factory=dict)


def segment_sources(sources: list[Source], out_root: str | Path, bundle: Bundle,
                    options: SegmentOptions = SegmentOptions()) -> list[SegmentResult]:
    """Segment every source into `out_root/<name>/`, then write `out_root/report.html` (every segmented
    sequence there). A failure leaves no folder for its source (nor an `out_root` that this call
    created and nothing was written to)."""
    out_root = Path(utf8_path(out_root, "the overlay videos and the report cannot take"))
    created = not out_root.exists()
    try:
        for source in sources:
            check_has_two_frames(source)
            check_replaceable(out_root / source.name, [source.path], FORMER_SEQUENCE)
        with tempfile.TemporaryDirectory(prefix="fusionseg-models-") as models_dir:
            models = extract_models(bundle, models_dir, METHOD_MODELS[options.method])
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
    """One source through the steps `options` asks for into `out_root/<source.name>/`."""
    started, steps = time.perf_counter(), {}
    max_side = options.max_side or bundle.max_side
    with _work_dir(out_root, source.name) as work:
        with _timed(steps, "frames"):
            sequence = write_sequence(source.raw, work / "frames", ExtractOptions(max_side=max_side))
        probs, facts = {}, {}
        for step in options.steps():
            with _timed(steps, step):
                facts.update(_run_step(step, sequence, work, bundle, models, options, probs))
        inputs = SegmentInputs(
            name=source.name,
            frames_dir=sequence.frames_dir,
            method=options.method,
            probs=probs[options.method],
            source_frames=source.native_frames,
            fps=source.fps or options.fps or DEFAULT_FPS,
            threshold=options.threshold,
            intermediate={method: probs[method] for method in made_from(options.method)},
            compared={SALIENCY: probs[SALIENCY]} if SALIENCY in probs and options.method != SALIENCY else {},
            provenance={
                "source": str(source.path),
                "models": bundle.provenance(),
                **(bundle.flow.as_dict() if "flow" in options.steps() else {}),
                **facts,
                "max_side": max_side,
                "step_seconds": {step: round(s, 2) for step, s in steps.items()},
            },
        )
        record = write_segment_outputs(inputs, out_root / source.name, options.stream_overlays)
    return SegmentResult(source.name, out_root / source.name, record["frames"], time.perf_counter() - started, steps)


def _run_step(step: str, sequence: Sequence, work: Path, bundle: Bundle, models: dict[str, Path],
              options: SegmentOptions, probs: dict[str, Path]) -> dict:
    """Run one step, adding the probabilities it makes to `probs`; returns facts for segment.json."""
    batch, device = options.batch_size, options.device
    if step == "flow":
        flow = bundle.flow
        compute_sequence_flow(sequence.frames_dir, work / "flow.h5", flow.method, flow.params, device, batch)
        encode_flow(work / "flow.h5", work / "flow_rgb", flow.normalization, flow.max_flow)
        return {}
    out = probs[STEP_PROBS[step]] = work / f"{STEP_PROBS[step]}.h5"
    if step == "saliency":
        write_saliency(sequence.frame_paths(), out, batch, device)
    elif step == "appearance":
        infer_stream(models["appearance"], "appearance", sequence.frame_paths(), out, batch, device)
    elif step == "motion":
        infer_stream(models["motion"], "motion", numbered_images(work / "flow_rgb"), out, batch, device)
    elif step == "fusion":
        infer_joint(models["fusion"], probs["appearance"], probs["motion"], out, batch, device)
    elif step == "tsn":
        # Fully automatic: TSN starts from Ours-Joint's masks on the frames it trusts most (--seed-frame
        # auto), with the settings the bundle's run scored it with (bundles without them: TSN's own).
        seeds = infer_tsn(models["tsn"], sequence.frames_dir, out, seed_probs=probs["joint"], seed_frame="auto",
                          device=device, **bundle.tsn_settings)  # fmt: skip
        return {"tsn_seed_frame": seeds[0].frame, "tsn_seed_frames": [seed.frame for seed in seeds]}
    return {}


def write_report(out_root: str | Path) -> Path:
    """`out_root/report.html`: overlay videos, mask areas and contact frames of every segmented sequence
    folder in `out_root`."""
    from fusionseg.report.build import segment_section
    from fusionseg.report.html import page

    out_root = Path(out_root)
    folders = sorted(p for p in out_root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / RECORD).is_file())
    path = out_root / REPORT
    document = page("FusionSeg: segmented videos", f"{len(folders)} sequence(s) in {out_root}",
                    [("segment", "Segmented videos", segment_section(folders, report_dir=out_root))])  # fmt: skip
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
