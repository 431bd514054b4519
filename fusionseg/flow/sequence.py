"""Flow for whole sequences: N flows for N frames in one HDF5 file, and their colour-coded images.

Convention (FusionSeg's): frame i gets the forward flow i -> i+1, and the last frame, which has no
successor, gets the backward flow N-1 -> N-2, so every frame has a motion image. The raw flow and its
colour coding are separate steps, so a change to the colour coding never recomputes flow.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
from tqdm import tqdm

from fusionseg.datasets.layout import Sequence, frame_name
from fusionseg.errors import ConfigError, InputError
from fusionseg.flow.colour import flow_to_rgb
from fusionseg.flow.methods import make_backend, method_params, to_grey
from fusionseg.flow.options import NORMALIZATIONS
from fusionseg.io import atomic_dir, hdf5_output, open_hdf5, read_hdf5, read_image, write_image

if TYPE_CHECKING:
    import h5py

CONVENTION = "forward i->i+1; last frame i->i-1"
log = logging.getLogger(__name__)


def frame_pairs(count: int) -> list[tuple[int, int]]:
    """(source, target) frame indices of the N flows of an N-frame sequence."""
    if count < 2:
        raise ValueError(f"flow needs at least 2 frames, got {count}")
    return [(i, i + 1) for i in range(count - 1)] + [(count - 1, count - 2)]


def compute_sequence_flow(
    frames_dir: str | Path,
    out_path: str | Path,
    method: str = "tvl1",
    params: dict | str | None = None,
    device: str = "auto",
    batch_size: int = 4,
) -> None:
    """Compute the N flows of the sequence in `frames_dir` and write them to `out_path` (HDF5, one
    Fletcher-32 checked chunk per frame)."""
    frames_dir = Path(frames_dir)
    if batch_size < 1:
        raise ConfigError(f"flow.batch_size: must be at least 1, got {batch_size}")
    params = method_params(method, params)
    grey = read_grey_frames(frames_dir)
    backend = make_backend(method, params, device)
    pairs = frame_pairs(len(grey))
    height, width = grey[0].shape
    with hdf5_output(out_path) as h5:
        dataset = h5.create_dataset(
            "flow", (len(pairs), height, width, 2), np.float32, chunks=(1, height, width, 2), fletcher32=True
        )
        h5.attrs.update(method=method, params=json.dumps(params, sort_keys=True), convention=CONVENTION)
        with tqdm(total=len(pairs), desc=f"flow {frames_dir.name}", unit="frame") as progress:
            for start in range(0, len(pairs), batch_size):
                batch = pairs[start : start + batch_size]
                flow = backend([grey[i] for i, _ in batch], [grey[j] for _, j in batch])
                dataset[start : start + len(batch)] = flow
                progress.update(len(batch))


def read_grey_frames(frames_dir: Path) -> list[np.ndarray]:
    """The sequence's frames as grey uint8, checked: at least 2, all the size of the first."""
    paths = Sequence.from_frames_dir(frames_dir).frame_paths()
    if len(paths) < 2:
        raise InputError(f"{frames_dir}: only {len(paths)} frame; flow needs at least 2")
    grey = []
    for path in tqdm(paths, desc=f"read {frames_dir.name}", unit="frame", leave=False):
        image = to_grey(read_image(path))
        if grey and image.shape != grey[0].shape:
            raise InputError(
                f"{path}: frame is {image.shape[1]}x{image.shape[0]}, but {paths[0].name} is {grey[0].shape[1]}x{grey[0].shape[0]}"
            )
        grey.append(image)
    return grey


def read_flow_h5(path: str | Path) -> np.ndarray:
    """The raw flow of a sequence as float32 (N, H, W, 2), (u, v) in pixels, checked."""
    with open_flow(path) as flow:
        return flow.read_all()


class FlowFrames:
    """The `flow` dataset of a compute-flow file, read frame by frame; every read is checked: a chunk
    failing its checksum, or flow that is NaN or infinite, is an InputError naming the file."""

    def __init__(self, dataset: h5py.Dataset, path: Path) -> None:
        self.dataset, self.path = dataset, path
        self.shape: tuple[int, ...] = dataset.shape

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> np.ndarray:
        return self._checked(read_hdf5(self.dataset, index, self.path, f"flow (frame {index})"), index)

    def read_all(self) -> np.ndarray:
        flow = read_hdf5(self.dataset, (), self.path, "flow").astype(np.float32, copy=False)
        for index, frame in enumerate(flow):
            self._checked(frame, index)
        return flow

    @property
    def attrs(self) -> dict:
        return dict(self.dataset.file.attrs)

    def _checked(self, frame: np.ndarray, index: int) -> np.ndarray:
        if not np.isfinite(frame).all():
            raise InputError(f"{self.path}: flow frame {index} holds NaN or infinite values (damaged flow file)")
        return frame


@contextlib.contextmanager
def open_flow(path: str | Path) -> Iterator[FlowFrames]:
    """The checked flow of a compute-flow file (N >= 2 frames of (H, W, 2)), open for reading."""
    with open_hdf5(path, "flow file") as h5:
        if "flow" not in h5:
            raise InputError(f"{path}: no 'flow' dataset (not written by compute-flow)")
        flow = h5["flow"]
        if flow.ndim != 4 or flow.shape[-1] != 2:
            raise InputError(f"{path}: 'flow' has shape {flow.shape}, expected (N, H, W, 2)")
        if flow.shape[0] < 2:
            raise InputError(f"{path}: 'flow' holds {flow.shape[0]} frame(s); a sequence's flow has at least 2")
        yield FlowFrames(flow, Path(path))


def read_flow_attrs(path: str | Path) -> dict:
    """The method, parameters (decoded) and convention recorded with a sequence's flow."""
    with open_flow(path) as flow:
        attrs = flow.attrs
    attrs["params"] = json.loads(attrs.get("params", "{}"))
    return attrs


def encode_flow(
    flow_path: str | Path, out_dir: str | Path, normalization: str = "per_frame", max_flow: float | None = None
) -> int:
    """Write one colour-coded RGB PNG per frame (00000.png, ...) into `out_dir`; returns the count."""
    scale = normalizing_maximum(normalization, max_flow)
    with open_flow(flow_path) as flow, atomic_dir(out_dir, "flow images", [flow_path]) as tmp:
        for index in tqdm(range(len(flow)), desc=f"encode {Path(flow_path).stem}", unit="frame"):
            write_image(tmp / f"{frame_name(index)}.png", flow_to_rgb(flow[index], scale))
        return len(flow)


def normalizing_maximum(normalization: str, max_flow: float | None) -> float | None:
    """None for per-frame normalisation, else the fixed magnitude of full saturation (checked)."""
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"flow_rgb.normalization: unknown value '{normalization}' (choose from {', '.join(NORMALIZATIONS)})")
    if normalization == "per_frame":
        if max_flow is not None:
            log.warning("flow_rgb.max_flow %s is ignored: normalization is per_frame", max_flow)
        return None
    if max_flow is None or not max_flow > 0:
        raise ConfigError("flow_rgb.max_flow: a positive number is required when normalization is fixed")
    return float(max_flow)
