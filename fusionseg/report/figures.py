"""Pictures for the report: per-sequence J bar charts and mask-area plots (matplotlib, Agg), and
mask-overlay thumbnails."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fusionseg.io import opencv_path, read_image, read_mask
from fusionseg.metrics.measures import boundary_map
from fusionseg.metrics.summary import METHOD_LABELS

THUMBNAIL_WIDTH = 380  # shown at half size: sharp on high-density screens
OVERLAY_COLOUR = np.array([255, 40, 40], dtype=np.float32)
METHOD_COLOURS = {
    "flow-th": "#b0b7c3",
    "flow-sal": "#7d8796",
    "saliency": "#5c6370",
    "appearance": "#f2a541",
    "motion": "#3c91e6",
    "joint": "#2a9d5c",
    "joint-tsn": "#1b6b3e",
    "tsn": "#9b5de5",
    "tsn-pixel": "#c9a7f0",
    "segflow": "#e63946",
    "segflow-online": "#f4a3a8",
}


def j_bar_chart(scores: pd.DataFrame, dataset: str) -> bytes:
    """Grouped bars: per-sequence J mean of every method on one dataset, as PNG bytes."""
    plt = _pyplot()
    subset = scores[scores["dataset"] == dataset]
    table = subset.pivot_table(index="sequence", columns="method", values="J_mean", aggfunc="mean")
    methods = [m for m in METHOD_LABELS if m in table.columns] + [m for m in table.columns if m not in METHOD_LABELS]
    table = table[methods]
    width = 0.8 / len(methods)
    positions = np.arange(len(table.index))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(table.index) * max(1, len(methods)) / 2 + 2), 3.6), dpi=110)
    for i, method in enumerate(methods):
        ax.bar(positions + (i - (len(methods) - 1) / 2) * width, table[method].to_numpy() * 100, width,
               label=METHOD_LABELS.get(method, method), color=METHOD_COLOURS.get(method))
    ax.set_xticks(positions, table.index, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("J mean (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{dataset}: per-sequence J", fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _png(fig)


def area_plot(areas: dict[str, np.ndarray], title: str) -> bytes:
    """One line per method: the share of the frame its mask covers (percent), frame by frame, as PNG
    bytes. A mask that swells, vanishes or flickers shows here before anyone opens a video."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 2.6), dpi=110)
    for method, area in areas.items():
        ax.plot(np.arange(len(area)), np.asarray(area) * 100, label=METHOD_LABELS.get(method, method),
                color=METHOD_COLOURS.get(method), linewidth=1.5)  # fmt: skip
    ax.set_xlabel("frame")
    ax.set_ylabel("mask area (% of frame)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _png(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def overlay(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The frame with the mask tinted red and its outline drawn, RGB uint8."""
    if mask.shape != frame.shape[:2]:
        mask = cv2.resize(mask.astype(np.uint8), (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    blended = frame.astype(np.float32)
    blended[mask] = 0.55 * blended[mask] + 0.45 * OVERLAY_COLOUR
    outline = cv2.dilate(boundary_map(mask).view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
    blended[outline] = OVERLAY_COLOUR
    return blended.astype(np.uint8)


def thumbnail_jpeg(rgb: np.ndarray, target_width: int = THUMBNAIL_WIDTH) -> bytes:
    """A JPEG of the image scaled to `target_width` pixels wide."""
    height, width = rgb.shape[:2]
    size = (target_width, max(1, round(height * target_width / width)))
    scaled = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if target_width <= width else cv2.INTER_LINEAR)
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(scaled, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("could not encode a thumbnail")
    return buffer.tobytes()


def mask_overlay_jpeg(frame: np.ndarray, mask_path: Path) -> bytes | None:
    """Thumbnail of the mask over the frame, or None when the mask file does not exist."""
    if not mask_path.is_file():
        return None
    return thumbnail_jpeg(overlay(frame, read_mask(mask_path)))


def heat_overlay_jpeg(frame: np.ndarray, weights: np.ndarray) -> bytes:
    """Thumbnail of a [0, 1] map (any size; stretched to the frame) blended over the frame, colour map
    from blue (0) to red (1)."""
    height, width = frame.shape[:2]
    scaled = cv2.resize(np.clip(weights, 0, 1).astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_JET)
    blended = 0.45 * frame.astype(np.float32) + 0.55 * cv2.cvtColor(heat, cv2.COLOR_BGR2RGB).astype(np.float32)
    return thumbnail_jpeg(blended.round().astype(np.uint8))


def image_jpeg(path: Path) -> bytes | None:
    return thumbnail_jpeg(read_image(path)) if path.is_file() else None


def video_frames(path: Path, count: int) -> list[tuple[int, np.ndarray]]:
    """`count` frames spread evenly over a video file, as (index, RGB) pairs (decoded in order)."""
    capture = cv2.VideoCapture(opencv_path(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    wanted = set(np.linspace(0, max(total - 1, 0), count).round().astype(int).tolist()) if total else set()
    frames = []
    index = 0
    try:
        while len(frames) < len(wanted):
            ok, bgr = capture.read()
            if not ok:
                break
            if index in wanted:
                frames.append((index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
            index += 1
    finally:
        capture.release()
    return frames
