"""Synthetic video clips with exact ground truth, for the embedded default pipeline.

Each clip is a stack of layers rendered by inverse warping: a smooth, muted background texture seen
by a panning and zooming camera, and 1..max_objects objects with irregular outlines (smooth random
radial blobs) and saturated, higher-frequency textures, each with its own affine motion in the world
(static ones move only with the camera; others translate, rotate and scale, some leaving the frame).

Because every layer is an affine map from frame pixels to texture pixels, the forward flow of the
visible surface is exact: a pixel x shown by layer L at frame t is at inv(M_L(t+1)) M_L(t) x at t+1.
Flows follow the pipeline convention (N flows for N frames, i -> i+1, the last frame i -> i-1).

A clip is seeded from (seed, sequence name) alone, so it is bit-for-bit reproducible on its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fusionseg.datasets.layout import BOX_COLUMNS, TABLE_COLUMNS, Sequence, check_sequence_name, frame_name
from fusionseg.datasets.writer import JPEG_QUALITY, mask_box, staged_sequence, write_tables
from fusionseg.io import write_image, write_labels, write_mask
from fusionseg.io.flo import write_flo

_INVERSE_LINEAR = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
_INVERSE_NEAREST = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP


@dataclass(frozen=True)
class SynthParams:
    frames: int = 12
    height: int = 96
    width: int = 128
    max_objects: int = 2
    seed: int = 0


@dataclass
class Layer:
    """A texture, an optional shape (None: the background covers everything) and per-frame maps."""

    texture: np.ndarray
    shape: np.ndarray | None
    maps: list[np.ndarray]  # 3x3 matrices taking frame pixels to texture pixels


@dataclass
class SynthClip:
    frames: np.ndarray  # (N, H, W, 3) uint8 RGB
    layers: np.ndarray  # (N, H, W) uint8: 0 background, k the k-th object (visible surface)
    flows: np.ndarray  # (N, H, W, 2) float32 exact flow of the visible surface
    boxes: pd.DataFrame  # one row per visible object per frame

    @property
    def masks(self) -> np.ndarray:
        return self.layers > 0


def sequence_rng(seed: int, name: str) -> np.random.Generator:
    """A generator that depends on (seed, name) only, stable across processes and platforms."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def render_clip(name: str, params: SynthParams) -> SynthClip:
    """Render the clip `name` in memory: frames, visible-layer ids, exact flow and boxes."""
    rng = sequence_rng(params.seed, name)
    camera = _camera_maps(rng, params)
    layers = [_background(rng, params, camera)]
    layers += [_object(rng, params, camera) for _ in range(int(rng.integers(1, params.max_objects + 1)))]
    rendered = [render_layers(layers, t, params) for t in range(params.frames)]
    frames = np.stack([r[0] for r in rendered])
    ids = np.stack([r[1] for r in rendered])
    flows = np.stack([layer_flow(layers, ids[t], t, _flow_target(t, params.frames)) for t in range(params.frames)])
    return SynthClip(frames, ids, flows, _visible_boxes(ids))


def write_clip(out_root: str | Path, name: str, params: SynthParams, merge_objects: bool = True) -> Sequence:
    """Render `name` and write it in the DAVIS layout (with Flow/<name>/*.flo), atomically.

    Masks are 0/255, or with `merge_objects=False` the objects' ids 1..K as grey values (multi-object
    ground truth). Clips are rendered at their native size, so both annotation folders hold the same.
    """
    check_sequence_name(name, out_root)  # before the name seeds the clip
    clip = render_clip(name, params)
    with staged_sequence(out_root, name) as staged:
        for t in range(params.frames):
            name_t = frame_name(t)
            write_image(staged.frames_dir / f"{name_t}.jpg", clip.frames[t], JPEG_QUALITY)
            for folder in (staged.masks_dir, staged.source_masks_dir):
                if merge_objects:
                    write_mask(folder / f"{name_t}.png", clip.masks[t])
                else:
                    write_labels(folder / f"{name_t}.png", clip.layers[t])
            write_flo(staged.flow_dir / f"{name_t}.flo", clip.flows[t])
        size = (params.width, params.height)
        rows = [[t, f"synthetic:{t}", *size, True, *size] for t in range(params.frames)]
        write_tables(staged, pd.DataFrame(rows, columns=TABLE_COLUMNS), clip.boxes)
    return Sequence(out_root, name)


def _flow_target(t: int, count: int) -> int:
    return t + 1 if t + 1 < count else t - 1


def _camera_maps(rng: np.random.Generator, params: SynthParams) -> list[np.ndarray]:
    """Frame -> world maps of a camera that pans and zooms about the middle of a 2x larger world."""
    pan = rng.uniform(-1.5, 1.5, size=2)
    zoom_rate = rng.uniform(-0.015, 0.015)
    frame_centre = np.array([params.width, params.height]) / 2
    maps = []
    for t in range(params.frames):
        centre = frame_centre * 2 + pan * t
        maps.append(_translate(centre) @ _scale(1 / (1 + zoom_rate * t)) @ _translate(-frame_centre))
    return maps


def _background(rng: np.random.Generator, params: SynthParams, camera: list[np.ndarray]) -> Layer:
    """Muted, low-frequency colours: unlike the objects' saturated, busier textures."""
    height, width = 2 * params.height, 2 * params.width
    base = rng.uniform(80, 170) + rng.uniform(-18, 18, size=3)
    shade = _smooth_noise(rng, height, width, cell=24)
    blobs = shade[..., :1] * rng.uniform(20, 35) + shade * rng.uniform(4, 10)
    waves = _sine_pattern(rng, height, width, period=rng.uniform(30, 60)) * rng.uniform(8, 20)
    grain = cv2.GaussianBlur(rng.normal(0, 5, (height, width, 3)).astype(np.float32), (0, 0), 1.2)
    texture = base + blobs + waves[..., None] + grain
    return Layer(np.clip(texture, 0, 255).astype(np.float32), None, camera)


def _object(rng: np.random.Generator, params: SynthParams, camera: list[np.ndarray]) -> Layer:
    radius = rng.uniform(0.16, 0.3) * min(params.height, params.width)
    shape = _blob_shape(rng, radius)
    texture = _object_texture(rng, *shape.shape)
    world_from_frame0 = camera[0]
    start, velocity = _object_path(rng, params, radius)
    start_world = (world_from_frame0 @ np.array([*start, 1.0]))[:2]
    spin, growth = (0.0, 0.0) if not velocity.any() else (rng.uniform(-0.04, 0.04), rng.uniform(-0.012, 0.012))
    angle0 = rng.uniform(0, 2 * np.pi)
    canvas_centre = np.array(shape.shape[::-1]) / 2
    maps = []
    for t, frame_to_world in enumerate(camera):
        centre = start_world + velocity * t
        world_to_canvas = (
            _translate(canvas_centre) @ _scale(1 / (1 + growth * t)) @ _rotate(-(angle0 + spin * t)) @ _translate(-centre)
        )
        maps.append(world_to_canvas @ frame_to_world)
    return Layer(texture, shape, maps)


def _object_path(rng: np.random.Generator, params: SynthParams, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Start (frame pixels) and world velocity: static (20%), moving (50%) or leaving the frame (30%)."""
    size = np.array([params.width, params.height], dtype=float)
    kind = rng.choice(["static", "moving", "leaving"], p=[0.2, 0.5, 0.3])
    if kind == "static":
        return size * rng.uniform(0.3, 0.7, size=2), np.zeros(2)
    speed = rng.uniform(1.5, 3.5) * max(size) / 128
    if kind == "moving":
        direction = rng.uniform(0, 2 * np.pi)
        return size * rng.uniform(0.3, 0.7, size=2), speed * np.array([np.cos(direction), np.sin(direction)])
    axis = int(rng.integers(0, 2))
    side = rng.choice([-1.0, 1.0])
    start = size * rng.uniform(0.35, 0.65, size=2)
    start[axis] = size[axis] / 2 + side * (size[axis] / 2 - radius * 1.1)
    velocity = rng.normal(0, 0.3, size=2)
    velocity[axis] = side * speed
    return start, velocity


def _blob_shape(rng: np.random.Generator, radius: float) -> np.ndarray:
    """A star-shaped region whose radius varies smoothly with angle (a few random harmonics)."""
    side = int(np.ceil(radius * 2 * 1.6)) + 4
    ys, xs = np.mgrid[0:side, 0:side] - (side - 1) / 2
    angle = np.arctan2(ys, xs)
    boundary = np.ones_like(angle)
    for harmonic in range(2, 6):
        boundary += rng.uniform(0, 0.35 / harmonic * 2) * np.cos(harmonic * angle + rng.uniform(0, 2 * np.pi))
    boundary = radius * boundary / boundary.max() * 1.3
    return (np.hypot(xs, ys) <= boundary).astype(np.uint8)


def _object_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Two saturated colours in stripes, checks or dots, plus fine noise (blurred to stay smooth)."""
    hue = rng.uniform(0, 180)
    colours = [_saturated(hue), _saturated((hue + rng.uniform(40, 140)) % 180)]
    period = rng.uniform(6, 12)
    kind = rng.integers(0, 3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == 0:
        weight = _sine_pattern(rng, height, width, period) * 0.5 + 0.5
    elif kind == 1:
        weight = (np.sin(2 * np.pi * xs / period) * np.sin(2 * np.pi * ys / period) > 0).astype(np.float32)
    else:
        weight = (np.hypot((xs % period) - period / 2, (ys % period) - period / 2) < period / 3).astype(np.float32)
    texture = colours[0] * weight[..., None] + colours[1] * (1 - weight[..., None])
    texture += rng.normal(0, 10, texture.shape)
    return np.clip(cv2.GaussianBlur(texture.astype(np.float32), (0, 0), 1.0), 0, 255)


def _saturated(hue: float) -> np.ndarray:
    hsv = np.array([[[hue, 230, 230]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    coarse = rng.normal(0, 1, (height // cell + 2, width // cell + 2, 3)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def _sine_pattern(rng: np.random.Generator, height: int, width: int, period: float) -> np.ndarray:
    direction = rng.uniform(0, np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.sin(2 * np.pi * (xs * np.cos(direction) + ys * np.sin(direction)) / period + rng.uniform(0, 2 * np.pi))


def render_layers(layers: list[Layer], t: int, params: SynthParams) -> tuple[np.ndarray, np.ndarray]:
    size = (params.width, params.height)
    image = cv2.warpAffine(layers[0].texture, layers[0].maps[t][:2], size, flags=_INVERSE_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    ids = np.zeros((params.height, params.width), np.uint8)
    for k, layer in enumerate(layers[1:], start=1):
        matrix = layer.maps[t][:2]
        inside = cv2.warpAffine(layer.shape, matrix, size, flags=_INVERSE_NEAREST, borderMode=cv2.BORDER_CONSTANT) > 0
        colour = cv2.warpAffine(layer.texture, matrix, size, flags=_INVERSE_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        image[inside] = colour[inside]
        ids[inside] = k
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), ids


def layer_flow(layers: list[Layer], ids: np.ndarray, t: int, target: int) -> np.ndarray:
    """Where each visible surface point of frame t is in frame `target`, minus where it is now."""
    flow = np.zeros((*ids.shape, 2), np.float64)
    for k, layer in enumerate(layers):
        ys, xs = np.nonzero(ids == k)
        points = np.stack([xs, ys, np.ones_like(xs)], axis=1).astype(np.float64)
        motion = np.linalg.inv(layer.maps[target]) @ layer.maps[t]
        flow[ys, xs] = points @ motion[:2].T - points[:, :2]
    return flow.astype(np.float32)


def _visible_boxes(ids: np.ndarray) -> pd.DataFrame:
    rows = [
        [t, *mask_box(ids[t] == k)] for t in range(len(ids)) for k in range(1, int(ids.max()) + 1) if (ids[t] == k).any()
    ]
    return pd.DataFrame(rows, columns=BOX_COLUMNS).astype(int)


def _translate(offset: np.ndarray) -> np.ndarray:
    return np.array([[1, 0, offset[0]], [0, 1, offset[1]], [0, 0, 1]], dtype=np.float64)


def _scale(factor: float) -> np.ndarray:
    return np.diag([factor, factor, 1.0])


def _rotate(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)
