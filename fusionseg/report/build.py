"""Assemble the report from whatever results are given; every section is optional except the summary.

Sections: summary (paper layout), per-sequence J charts and table, overlay strips (frame, flow,
Ours-A, Ours-M, Ours-Joint and the other systems' masks, ground truth) for every scored sequence, TSN's
routing maps, bootstrap funnel and pseudo-label quality, flow end-point error, sequence roles (and
sequences in several roles), and per-rule time and memory from Snakemake benchmark files.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
from tqdm import tqdm

from fusionseg.datasets.layout import RESOLUTION, frame_name, numbered_images
from fusionseg.errors import InputError
from fusionseg.bootstrap.report import FUNNEL_COLUMNS, QUALITY_COLUMNS
from fusionseg.io import read_image, read_mask, read_table
from fusionseg.metrics.summary import METHOD_LABELS, read_scores, read_summary
from fusionseg.report import figures
from fusionseg.report.html import data_uri, escape, image_tag, page, table, video_tag
from fusionseg.report.segmented import read_record, shown_outputs

# Strip columns, where the run has the method's masks (TSN's ablation and SegFlow-online left out: width).
OVERLAY_METHODS = [
    ("appearance", "Ours-A"), ("motion", "Ours-M"), ("joint", "Ours-Joint"), ("joint-tsn", "Ours-Joint+TSN"),
    ("tsn", "TSN"), ("segflow", "SegFlow"),
]  # fmt: skip
BENCHMARK_COLUMNS = ["s", "max_rss"]
# Segmented videos: contact frames this wide; overlay videos up to this size are inlined, larger ones
# linked (a report of a few sequences stays a few tens of MB and opens anywhere).
CONTACT_WIDTH = 640
MAX_EMBEDDED_VIDEO_BYTES = 20_000_000
VIDEO_MIMES = {".webm": "video/webm", ".mp4": "video/mp4"}


@dataclass
class ReportInputs:
    """Paths to everything the report can show; None or empty means 'not available'."""

    summary: Path | None
    scores: list[Path] = field(default_factory=list)
    validation_summary: Path | None = None
    frames_roots: dict[str, Path] = field(default_factory=dict)
    flow_rgb_root: Path | None = None
    masks_root: Path | None = None
    funnel: Path | None = None
    quality: Path | None = None
    flow_epe: Path | None = None
    benchmarks: Path | None = None
    roles: pd.DataFrame | None = None
    segment: list[Path] = field(default_factory=list)
    routing_root: Path | None = None
    overlay_frames: int = 4
    title: str = "FusionSeg results"
    out_dir: Path | None = None  # where the report goes: videos too large to inline are linked from there


def build_report(inputs: ReportInputs) -> str:
    """The complete self-contained HTML document."""
    sections = [("summary", "Summary", summary_section(inputs.summary))] if inputs.summary else []
    if inputs.validation_summary:
        note = (
            '<p class="note">Held-out training sequences (the config\'s validation role): every setting was '
            "chosen on these, never on the benchmark.</p>"
        )
        sections.append(("validation", "Validation split", note + summary_section(inputs.validation_summary)))
    if inputs.scores:
        scores = read_scores(inputs.scores)
        sections.append(("sequences", "Per-sequence scores", sequences_section(scores)))
        if inputs.frames_roots:
            sections.append(("overlays", "Overlays", overlays_section(scores, inputs)))
        if inputs.routing_root and inputs.frames_roots:
            sections.append(("routing", "TSN routing maps", routing_section(scores, inputs)))
    bootstrap = bootstrap_section(inputs.funnel, inputs.quality)
    if bootstrap:
        sections.append(("bootstrap", "Bootstrapped pseudo labels", bootstrap))
    if inputs.flow_epe:
        sections.append(("flow", "Optical flow accuracy", table(read_table(inputs.flow_epe, "flow accuracy table"))))
    if inputs.segment:
        sections.append(("segment", "Segmented videos", segment_section(inputs.segment, inputs.overlay_frames, inputs.out_dir)))
    if inputs.roles is not None:
        sections.append(("roles", "Sequences and roles", roles_section(inputs.roles)))
    if inputs.benchmarks:
        sections.append(("compute", "Time and memory per rule", benchmarks_section(inputs.benchmarks)))
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return page(inputs.title, f"FusionSeg (Jain, Xiong, Grauman, CVPR 2017) - generated {stamp}", sections)


def summary_section(summary_path: Path) -> str:
    summary = read_summary(summary_path)
    shown = summary.drop(columns=[c for c in ("method_id",) if c in summary])
    numeric = [c for c in shown.columns if pd.api.types.is_numeric_dtype(shown[c])]
    shown[numeric] = shown[numeric] * 100
    note = (
        '<p class="note">Percent. J: region similarity (IoU), F: boundary accuracy, J&amp;F their mean, '
        "avg IoU: mean per-sequence Jaccard (the paper's measure). Best per column in bold.</p>"
    )
    return note + table(shown, "{:.1f}", best_columns=numeric)


def sequences_section(scores: pd.DataFrame) -> str:
    parts = []
    for dataset in dict.fromkeys(scores["dataset"]):
        chart = figures.j_bar_chart(scores, dataset)
        parts.append(f"<h3>{escape(dataset)}</h3>" + image_tag(chart, "image/png", f"J per sequence, {dataset}", "chart"))
    columns = ["method", "dataset", "sequence", "frames", "n_frames", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"]
    return "".join(parts) + "<h3>All sequences</h3>" + table(scores[columns])


def overlays_section(scores: pd.DataFrame, inputs: ReportInputs) -> str:
    pairs = list(dict.fromkeys(zip(scores["dataset"], scores["sequence"])))
    parts = ['<p class="note">Each row one frame; masks tinted red over the frame.</p>']
    for dataset, sequence in tqdm(pairs, desc="report overlays", unit="seq", leave=False):
        root = inputs.frames_roots.get(dataset)
        if root is None:
            parts.append(f'<p class="warn">{escape(dataset)}/{escape(sequence)}: no --frames-root given for {escape(dataset)}</p>')
            continue
        parts.append(f"<h3>{escape(dataset)} / {escape(sequence)}</h3>" + overlay_strip(root, dataset, sequence, inputs))
    return "".join(parts)


def overlay_strip(root: Path, dataset: str, sequence: str, inputs: ReportInputs) -> str:
    """A table: one row per chosen frame; columns frame, flow, the methods' masks, ground truth."""
    frame_paths = numbered_images(Path(root) / "JPEGImages" / RESOLUTION / sequence, "frame")
    gt_dir = Path(root) / "Annotations" / RESOLUTION / sequence
    annotated = sorted(int(p.stem) for p in gt_dir.glob("*.png") if p.stem.isdigit())
    candidates = annotated or list(range(len(frame_paths)))
    chosen = sorted({candidates[i] for i in np.linspace(0, len(candidates) - 1, inputs.overlay_frames).round().astype(int)})
    methods = shown_methods(inputs)
    headers = ["frame", "flow"] + [label for _, label in methods] + ["ground truth"]
    rows = [_strip_row(frame_paths[i], i, dataset, sequence, gt_dir, inputs, methods) for i in chosen if i < len(frame_paths)]
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f'<table class="strip"><tr>{head}</tr>{"".join(rows)}</table>'


def shown_methods(inputs: ReportInputs) -> list[tuple[str, str]]:
    """The strip's method columns: FusionSeg's streams always (blank where missing), other systems where run."""
    always = {"appearance", "motion", "joint"}
    root = inputs.masks_root
    return [(m, label) for m, label in OVERLAY_METHODS if m in always or (root is not None and (root / m).is_dir())]


def _strip_row(
    frame_path: Path, index: int, dataset: str, sequence: str, gt_dir: Path, inputs: ReportInputs, methods: list
) -> str:
    frame = read_image(frame_path)
    name = frame_name(index)
    cells = [figures.thumbnail_jpeg(frame)]
    flow_path = inputs.flow_rgb_root / dataset / sequence / f"{name}.png" if inputs.flow_rgb_root else None
    cells.append(figures.image_jpeg(flow_path) if flow_path else None)
    for method, _ in methods:
        mask_path = inputs.masks_root / method / dataset / sequence / f"{name}.png" if inputs.masks_root else None
        cells.append(figures.mask_overlay_jpeg(frame, mask_path) if mask_path else None)
    cells.append(figures.mask_overlay_jpeg(frame, gt_dir / f"{name}.png"))
    tds = "".join(
        f"<td>{image_tag(data, 'image/jpeg', name)}</td>" if data else '<td class="note">not available</td>' for data in cells
    )
    return f"<tr>{tds}</tr>"


def routing_section(scores: pd.DataFrame, inputs: ReportInputs) -> str:
    """TSN's routing map W over a few frames of each scored sequence: red where the instance stream's
    features are used, blue where the pixel (memory) stream's are."""
    from fusionseg.infer.probs import read_probs, read_probs_attrs

    parts = [
        '<p class="note">Routing map W of TSN (semi-supervised, both streams) at stride 16, blended over the '
        "frame: red, the instance stream (dynamic heads) takes over; blue, the pixel stream (memory readout). "
        "W is high where a query pixel's key lies far from every memory key (pixels the memory cannot explain: "
        "new appearance, occlusion).</p>"
    ]
    tsn = scores[scores["method"] == "tsn"]
    pairs = list(dict.fromkeys(zip(tsn["dataset"], tsn["sequence"])))
    for dataset, sequence in pairs:
        path = inputs.routing_root / dataset / f"{sequence}.h5"
        root = inputs.frames_roots.get(dataset)
        if not path.is_file() or root is None:
            continue
        routing = read_probs(path)
        seed = int(read_probs_attrs(path).get("seed_frame", 0))
        frame_paths = numbered_images(Path(root) / "JPEGImages" / RESOLUTION / sequence, "frame")
        later = [i for i in range(len(routing)) if i != seed and i < len(frame_paths)]
        chosen = sorted({later[i] for i in np.linspace(0, len(later) - 1, min(inputs.overlay_frames, len(later))).round().astype(int)})
        head = "".join(f"<th>frame {i} (mean W {routing[i].mean():.2f})</th>" for i in chosen)
        cells = "".join(
            f"<td>{image_tag(figures.heat_overlay_jpeg(read_image(frame_paths[i]), routing[i]), 'image/jpeg', frame_name(i))}</td>"
            for i in chosen
        )
        parts.append(f"<h3>{escape(dataset)} / {escape(sequence)}</h3>" f'<table class="strip"><tr>{head}</tr><tr>{cells}</tr></table>')
    return "".join(parts)


def segment_section(folders: list[Path], frames: int = 4, report_dir: Path | None = None) -> str:
    """Per segmented sequence (the segment role, `fusionseg segment`): its overlay videos, playable in
    the page; the share of the frame each method's mask covers, frame by frame; and `frames` frames of
    the chosen method's overlay beside the Saliency row's. Videos up to MAX_EMBEDDED_VIDEO_BYTES are
    inlined; larger ones are linked relative to `report_dir` (the report's folder; default: the
    current one)."""
    parts = [
        '<p class="note">Masks tinted red over the source frames (no ground truth: not scored). Saliency is '
        "U²-Netp per frame, as a background remover runs it: the floor a learned method should beat.</p>"
    ]
    for folder in tqdm(folders, desc="report segmented videos", unit="seq", leave=False):
        parts.append(_segmented_sequence(Path(folder), frames, Path(report_dir) if report_dir else Path.cwd()))
    return "".join(parts)


def _segmented_sequence(folder: Path, frames: int, report_dir: Path) -> str:
    """One segmented sequence's part of the segment section."""
    record = read_record(folder)
    shown = shown_outputs(folder, record)
    videos = "".join(_video_figure(method, video, report_dir) for method, (_, video) in shown.items())
    areas = {method: _mask_areas(masks) for method, (masks, _) in shown.items()}
    plot = figures.area_plot(areas, f"{record['name']}: mask area per frame")
    return (
        f"<h3>{escape(record['name'])}</h3><p class=\"note\">{escape(_segment_facts(record))}; {escape(str(folder))}</p>"
        f'<div class="videos">{videos}</div>'
        + image_tag(plot, "image/png", f"mask area per frame, {record['name']}", "chart")
        + _contact_sheet(shown, record.get("method", "joint"), frames)
    )


def _segment_facts(record: dict) -> str:
    width, height = record["source_size"]
    method = record.get("method", "joint")
    facts = [f"{METHOD_LABELS.get(method, method)} ({method})", f"{record['frames']} frames", f"{width}x{height}",
             f"{record['fps']:g} frames/s"]  # fmt: skip
    seed = record.get("tsn_seed_frame")
    if seed is not None:
        facts.append(f"TSN seeded on frame {seed}" if seed >= 0 else "no TSN seed (Ours-Joint found no object): all background")
    bundle = (record.get("models") or {}).get("bundle_sha256")
    if bundle:
        facts.append(f"bundle sha256 {bundle[:12]}")
    steps = record.get("step_seconds") or {}
    if steps:
        facts.append("seconds per step: " + ", ".join(f"{step} {seconds:.1f}" for step, seconds in steps.items()))
    return ", ".join(facts)


def _video_figure(method: str, video: Path, report_dir: Path) -> str:
    """A player of the overlay video: inlined when small enough, else linked; a link to the file below."""
    if not video.is_file():
        raise InputError(f"{video}: overlay video missing")
    link = quote(Path(os.path.relpath(video.resolve(), report_dir.resolve())).as_posix())
    size = video.stat().st_size
    mime = VIDEO_MIMES.get(video.suffix, "video/mp4")
    inline = size <= MAX_EMBEDDED_VIDEO_BYTES
    src = data_uri(video.read_bytes(), mime) if inline else link
    how = "inlined" if inline else f"linked: above the {MAX_EMBEDDED_VIDEO_BYTES / 1e6:g} MB inlining limit"
    label = METHOD_LABELS.get(method, method)
    return (
        f"<figure>{video_tag(src, mime, label)}<figcaption><b>{escape(label)}</b> - "
        f'<a href="{escape(link)}">{escape(video.name)}</a> ({size / 1e6:.1f} MB, {how})</figcaption></figure>'
    )


def _mask_areas(masks_dir: Path) -> np.ndarray:
    """Share of the frame each mask of a folder covers, in frame order."""
    paths = numbered_images(masks_dir, "mask")
    return np.array([read_mask(path).mean() for path in paths])


def _contact_sheet(shown: dict[str, tuple[Path, Path]], chosen: str, frames: int) -> str:
    """`frames` frames of the chosen method's overlay video, the Saliency row's beside each, CONTACT_WIDTH wide."""
    columns = [chosen, *(["saliency"] if "saliency" in shown and chosen != "saliency" else [])]
    decoded = {method: figures.video_frames(shown[method][1], frames) for method in columns}
    if not decoded[chosen]:
        raise InputError(f"{shown[chosen][1]}: no readable frames for the contact sheet")
    head = "<th>frame</th>" + "".join(f"<th>{escape(METHOD_LABELS.get(m, m))}</th>" for m in columns)
    rows = []
    for row, (index, _) in enumerate(decoded[chosen]):
        cells = []
        for method in columns:
            pair = decoded[method][row] if row < len(decoded[method]) else None
            cells.append(
                f"<td>{image_tag(figures.thumbnail_jpeg(pair[1], CONTACT_WIDTH), 'image/jpeg', f'{method} frame {index}')}</td>"
                if pair else '<td class="note">not available</td>'
            )  # fmt: skip
        rows.append(f"<tr><td>{index}</td>{''.join(cells)}</tr>")
    return f'<table class="contact"><tr>{head}</tr>{"".join(rows)}</table>'


def bootstrap_section(funnel: Path | None, quality: Path | None) -> str:
    parts = []
    if funnel:
        parts.append("<h3>Funnel: frames kept by each test</h3>" + table(read_table(funnel, "bootstrap funnel", FUNNEL_COLUMNS)))
    if quality:
        quality_rows = read_table(quality, "pseudo-label quality table", QUALITY_COLUMNS)
        parts.append("<h3>Pseudo-label quality against human masks</h3>" + table(quality_rows))
    return "".join(parts)


def roles_section(roles: pd.DataFrame) -> str:
    """Which sequences play which role; sequences in more than one role listed apart."""
    grouped = (
        roles.groupby(["role", "dataset"], sort=False)["sequence"]
        .agg(lambda s: ", ".join(s))
        .reset_index()
        .rename(columns={"sequence": "sequences"})
    )
    grouped.insert(2, "count", roles.groupby(["role", "dataset"], sort=False).size().to_numpy())
    shared = roles.groupby(["dataset", "sequence"])["role"].agg(list)
    shared = shared[shared.map(len) > 1]
    overlap = (
        table(shared.map(", ".join).rename("roles").reset_index())
        if len(shared)
        else '<p class="note">No sequence appears in more than one role.</p>'
    )
    return table(grouped) + "<h3>Sequences in several roles</h3>" + overlap


def benchmarks_section(folder: Path) -> str:
    """Per-rule totals from Snakemake `benchmark:` TSV files (rule = first sub-folder, else file stem)."""
    folder = Path(folder)
    files = sorted(folder.rglob("*.tsv")) + sorted(folder.rglob("*.txt"))
    if not files:
        raise InputError(f"{folder}: no Snakemake benchmark files (*.tsv, *.txt)")
    records = []
    for path in files:
        frame = pd.read_csv(path, sep="\t")
        missing = [c for c in BENCHMARK_COLUMNS if c not in frame.columns]
        if missing:
            raise InputError(f"{path}: not a Snakemake benchmark file (missing column(s) {', '.join(missing)})")
        relative = path.relative_to(folder)
        rule = relative.parts[0] if len(relative.parts) > 1 else path.stem
        records.append({"rule": rule, "s": frame["s"].mean(), "max_rss": pd.to_numeric(frame["max_rss"], errors="coerce").max()})
    jobs = pd.DataFrame(records)
    per_rule = jobs.groupby("rule", sort=False).agg(
        jobs=("s", "size"), total_s=("s", "sum"), mean_s=("s", "mean"), max_s=("s", "max"), peak_rss_mb=("max_rss", "max")
    )
    per_rule = per_rule.sort_values("total_s", ascending=False).reset_index()
    return '<p class="note">Wall-clock seconds and peak resident memory (MB) per rule.</p>' + table(per_rule, "{:.1f}")


def roles_from_csv(path: Path) -> pd.DataFrame:
    return read_table(path, "roles table", ["role", "dataset", "sequence"])


def roles_from_config(config: dict) -> pd.DataFrame:
    from fusionseg.config import ROLES, role_sequences

    rows = [{"role": r, "dataset": d, "sequence": s} for r in ROLES for d, s in role_sequences(config, r)]
    return pd.DataFrame(rows, columns=["role", "dataset", "sequence"])
