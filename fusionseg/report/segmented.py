"""A segmented sequence's folder, the data contract between the stage that writes it (fusionseg.segment:
`fusionseg segment` and the segment role's segment-outputs) and the report that shows it
(docs/architecture.md, `segment/{dataset}/{seq}/`):

    masks/, overlay.webm                      the chosen method's masks and overlay video
    masks-<method>/, overlay-<method>.webm    every other method shown
    segment.json                              the record: name, method, shown (methods, chosen first),
                                              frames, sizes, fps, outputs, provenance

Records written before methods were recorded (Ours-Joint only; stream overlays as MPEG-4 .mp4) are
read from their `outputs` list.
"""

from __future__ import annotations

import json
from pathlib import Path

from fusionseg.errors import InputError

# Output names inside a sequence folder: the chosen method's masks/ and overlay.webm; every other
# method shown, masks-<method>/ and overlay-<method>.webm.
MASKS = "masks"
OVERLAY_STEM = "overlay"
# Overlay videos are WebM (VP8, fusionseg.segment.video): the report plays them in an HTML5 <video>.
VIDEO_SUFFIX = ".webm"
OVERLAY = f"{OVERLAY_STEM}{VIDEO_SUFFIX}"
RECORD = "segment.json"


def output_names(method: str, chosen: str) -> tuple[str, str]:
    """(masks folder, overlay video) of `method` in a folder whose chosen method is `chosen`."""
    suffix = "" if method == chosen else f"-{method}"
    return f"{MASKS}{suffix}", f"{OVERLAY_STEM}{suffix}{VIDEO_SUFFIX}"


def shown_outputs(folder: str | Path, record: dict) -> dict[str, tuple[Path, Path]]:
    """Each shown method's (masks folder, overlay video), the chosen method first. Records from before
    methods were recorded (Ours-Joint; stream overlays as .mp4) are read from their `outputs` list."""
    folder = Path(folder)
    chosen = record.get("method", "joint")
    outputs = set(record.get("outputs", []))
    methods = record.get("shown") or [chosen, *(o.split("-", 1)[1] for o in sorted(outputs) if o.startswith(f"{MASKS}-"))]
    shown = {}
    for method in methods:
        masks, video = output_names(method, chosen)
        former = Path(video).with_suffix(".mp4").name
        shown[method] = (folder / masks, folder / (former if former in outputs else video))
    return shown


def read_record(folder: str | Path) -> dict:
    """A sequence folder's segment.json."""
    path = Path(folder) / RECORD
    if not path.is_file():
        raise InputError(f"{folder}: not a segmented sequence (no {RECORD})")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"{path}: not readable JSON ({exc})") from exc
