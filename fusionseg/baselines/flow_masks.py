"""Flow-Th and Flow-Sal: foreground masks from optical flow alone (FusionSeg, Table 1 baselines).

- Flow-Th: per frame, foreground where the flow magnitude exceeds its mean plus one standard deviation.
- Flow-Sal: OpenCV contrib's spectral-residual static saliency of the colour-coded flow image,
  foreground where the saliency exceeds its mean.
Both write DAVIS PNG masks (0/255) named like the frames, into a folder that appears only when complete.
With a target size (the source's native size), the magnitude or saliency map is resized bilinearly
first and the threshold, computed on the map at flow resolution, applied after: the same decision as
at flow resolution, with smooth outlines at the size that is scored.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fusionseg.datasets.layout import frame_name, numbered_images
from fusionseg.errors import InputError
from fusionseg.infer.masks import Size, resize_scores
from fusionseg.io import atomic_dir, read_image, write_mask


def flow_threshold_mask(flow: np.ndarray, size: Size | None = None) -> np.ndarray:
    """Flow-Th on one (H, W, 2) flow field: magnitude > mean + std (population std over the frame)."""
    magnitude = np.hypot(flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64))
    return _threshold_at(magnitude, magnitude.mean() + magnitude.std(), size)


def flow_saliency_mask(flow_rgb: np.ndarray, size: Size | None = None) -> np.ndarray:
    """Flow-Sal on one colour-coded flow image (RGB uint8): spectral-residual saliency > its mean."""
    saliency = cv2.saliency.StaticSaliencySpectralResidual_create()
    ok, saliency_map = saliency.computeSaliency(cv2.cvtColor(flow_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError("spectral-residual saliency failed on a flow image")
    return _threshold_at(saliency_map, saliency_map.mean(), size)


def write_flow_threshold_masks(flow_path: Path, out_dir: Path, size: Size | None = None) -> int:
    """Flow-Th for every frame of a flow HDF5 (dataset `flow`, (N, H, W, 2)); returns the frame count."""
    from fusionseg.flow.sequence import open_flow

    with open_flow(flow_path) as flows, atomic_dir(out_dir, "Flow-Th masks", [flow_path]) as tmp:
        for index in tqdm(range(flows.shape[0]), desc="flow-th", unit="frame", leave=False):
            write_mask(tmp / f"{frame_name(index)}.png", flow_threshold_mask(flows[index], size))
        return flows.shape[0]


def write_flow_saliency_masks(flow_rgb_dir: Path, out_dir: Path, size: Size | None = None) -> int:
    """Flow-Sal for every colour-coded flow image 00000.png, ... in a folder; returns the frame count."""
    paths = numbered_images(flow_rgb_dir, "flow image")
    with atomic_dir(out_dir, "Flow-Sal masks", [flow_rgb_dir]) as tmp:
        for path in tqdm(paths, desc="flow-sal", unit="frame", leave=False):
            write_mask(tmp / f"{path.stem}.png", flow_saliency_mask(read_image(path), size))
    return len(paths)


def _threshold_at(scores: np.ndarray, threshold: float, size: Size | None) -> np.ndarray:
    return (resize_scores(scores, size) if size else scores) > threshold
