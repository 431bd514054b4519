"""Dataset stage speed: synthetic clip generation, and extract-frames against a bare OpenCV loop.

- synth: `render_clip` (in memory) and `write_clip` (JPEG + PNG + .flo on disk) for the default clip
  (12 frames, 128x96) and a larger one (30 frames, 320x240), median of 5 runs;
- extract: `write_sequence` (checked decoding, masks, atomic staging, frame table) on the real
  bikes.mp4, DAVIS-2016 blackswan and SegTrack-v2 bmx from ../shared/data, side by side with a bare
  loop that only decodes and writes the JPEGs (cv2.VideoCapture / cv2.imread + cv2.imwrite, quality
  95): the difference is the price of the checks and of atomic output.
Writes benchmarks/results/datasets.{csv,md}. Run: python benchmarks/datasets.py
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import pandas as pd

from fusionseg.datasets.readers import open_source
from fusionseg.datasets.synthetic import SynthParams, render_clip, write_clip
from fusionseg.datasets.writer import ExtractOptions, write_sequence

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
REPEATS = 5


def median_seconds(run: Callable[[], object], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def synth_rows(workdir: Path) -> list[dict]:
    rows = []
    for params in (SynthParams(12, 96, 128, 2, 2017), SynthParams(30, 240, 320, 3, 2017)):
        size = f"{params.frames} frames {params.width}x{params.height}"
        rendered = median_seconds(lambda: render_clip("clip003", params))
        written = median_seconds(lambda: write_clip(workdir / "synth", "clip003", params))
        rows.append(_row("synth", size, "render_clip (memory)", rendered, params.frames))
        rows.append(_row("synth", size, "write_clip (disk)", written, params.frames))
    return rows


def bare_video_loop(path: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(str(path))
    count = 0
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        cv2.imwrite(str(out / f"{count:05d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
        count += 1
    capture.release()
    return count


def bare_image_loop(paths: list[Path], out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(paths):
        cv2.imwrite(str(out / f"{index:05d}.jpg"), cv2.imread(str(path)), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return len(paths)


def extract_rows(workdir: Path) -> list[dict]:
    cases = [
        ("video", DATA / "videos" / "bikes.mp4", None, 0, lambda out: bare_video_loop(DATA / "videos" / "bikes.mp4", out)),
        ("davis", DATA / "davis2016", "blackswan", 0,
         lambda out: bare_image_loop(sorted((DATA / "davis2016" / "JPEGImages" / "480p" / "blackswan").glob("*.jpg")), out)),
        ("segtrackv2", DATA / "segtrackv2", "bmx", 127,
         lambda out: bare_image_loop(sorted((DATA / "segtrackv2" / "JPEGImages" / "bmx").glob("*.png")), out)),
    ]
    rows = []
    for layout, source, sequence, threshold, bare in cases:
        options = ExtractOptions()
        ours = median_seconds(
            lambda: write_sequence(open_source(layout, source, sequence, mask_threshold=threshold), workdir / "ours", options),
            repeats=3,
        )
        frames = len(pd.read_csv(workdir / "ours" / "Tables" / f"{sequence or source.stem}.csv"))
        # a fresh folder per run, as write_sequence's staging folder is (overwriting files costs more)
        baseline = median_seconds(lambda: bare(Path(tempfile.mkdtemp(dir=workdir)) / layout), repeats=3)
        name = f"{layout} {sequence or source.stem}"
        rows.append(_row("extract", name, "fusionseg write_sequence", ours, frames))
        rows.append(_row("extract", name, "bare OpenCV decode + imwrite", baseline, frames))
    return rows


def _row(task: str, case: str, method: str, seconds: float, frames: int) -> dict:
    return {"task": task, "case": case, "method": method, "seconds": round(seconds, 4), "frames_per_s": round(frames / seconds, 1)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = synth_rows(Path(tmp))
        if DATA.is_dir():
            rows += extract_rows(Path(tmp))
    table = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "datasets.csv", index=False)
    header = f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, OpenCV {cv2.__version__}\n\n"
    (RESULTS / "datasets.md").write_text(header + table.to_markdown(index=False) + "\n")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
