"""Ground-truth optical flow for evaluating flow methods: the scored pairs of the flow benchmark's
data (`<data>/flow_gt`: Middlebury, FlyingChairs, KITTI-2015, MPI-Sintel clean and final) and the
synthetic tuning set made from DAVIS frames (`dev_pairs`). `fusionseg.flow.evaluate` scores a method on
them (end-point error); `benchmarks/flow.py` is the benchmark that does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusionseg.datasets.synthetic import Layer, SynthParams, layer_flow, render_layers
from fusionseg.errors import InputError
from fusionseg.io import read_image, read_mask
from fusionseg.io.flo import read_flo, read_kitti_flow


@dataclass(frozen=True)
class FlowPair:
    """One scored frame pair: RGB images, ground-truth flow (H, W, 2) and where it counts.

    `valid` marks pixels with known flow (Sintel: not in its invalid mask; KITTI: its flow_occ
    validity); `non_occluded` is the subset visible in both frames, where the set says so (None: the
    set has no occlusion mask).
    """

    dataset: str
    name: str
    rgb: tuple[np.ndarray, np.ndarray]
    flow: np.ndarray
    valid: np.ndarray
    non_occluded: np.ndarray | None = None

    @property
    def grey(self) -> tuple[np.ndarray, np.ndarray]:
        """The grey uint8 images every backend of fusionseg.flow.methods takes."""
        from fusionseg.flow.methods import to_grey

        return to_grey(self.rgb[0]), to_grey(self.rgb[1])


SINTEL_SCENES = ("alley_1", "cave_2", "market_5")
DATASETS = ("Middlebury", "FlyingChairs", "KITTI-2015", "Sintel clean", "Sintel final")


def ground_truth_pairs(data: Path) -> list[FlowPair]:
    """Every scored pair of `data`/flow_gt, set by set in the order of DATASETS."""
    root = data / "flow_gt"
    pairs = []
    for name in ("Dimetrodon", "Grove2", "RubberWhale"):
        folder = root / "middlebury" / name
        pairs.append(_pair("Middlebury", name, folder / "frame10.png", folder / "frame11.png", read_flo(folder / "flow10.flo")))
    chairs = root / "flyingchairs"
    for gt in sorted(chairs.glob("*-gt.flo")):
        stem = gt.name.removesuffix("-gt.flo")
        pairs.append(_pair("FlyingChairs", stem, chairs / f"{stem}-img0.ppm", chairs / f"{stem}-img1.ppm", read_flo(gt)))
    kitti = root / "kitti2015"
    flow, valid = read_kitti_flow(kitti / "kitti_occ_000010_10.png")
    _, visible = read_kitti_flow(kitti / "kitti_noc_000010_10.png")
    pairs.append(_pair("KITTI-2015", "000010", kitti / "kitti_000010_10.png", kitti / "kitti_000010_11.png", flow, valid, visible))
    for sintel_pass in ("clean", "final"):
        for scene in SINTEL_SCENES:
            folder = root / "sintel" / sintel_pass / scene
            invalid = read_mask(folder / "invalid_0002.png")
            occluded = read_mask(folder / "occlusions_0002.png")
            pairs.append(_pair(f"Sintel {sintel_pass}", scene, folder / "frame_0002.png", folder / "frame_0003.png",
                               read_flo(folder / "frame_0002.flo"), ~invalid, ~(invalid | occluded)))
    return pairs


def _pair(dataset: str, name: str, first: Path, second: Path, flow: np.ndarray,
          valid: np.ndarray | None = None, non_occluded: np.ndarray | None = None) -> FlowPair:
    known = (np.abs(flow) < 1e9).all(axis=-1)
    valid = known if valid is None else valid & known
    non_occluded = None if non_occluded is None else non_occluded & valid
    return FlowPair(dataset, name, (read_image(first), read_image(second)), flow, valid, non_occluded)


# The tuning set: settings of the torch TV-L1 are chosen on these pairs, never on the scored ones.
DEV_SIZES = ((240, 427), (384, 512), (436, 1024))
DEV_PAIRS_PER_SIZE = 6


def dev_pairs(data: Path, sizes=DEV_SIZES, per_size: int = DEV_PAIRS_PER_SIZE) -> list[FlowPair]:
    """Synthetic large-motion pairs with exact flow, FlyingChairs-style, from DAVIS frames.

    DAVIS photographs (none of them a flow benchmark image) give natural texture: one is a background
    seen by a camera that pans, zooms and rolls; 2-4 others, cut into smooth random blobs, fly over it
    with their own translation (up to 15% of the width), rotation and scaling. Every layer is an affine
    map, so the flow of the visible surface is exact; pixels whose point is hidden or leaves the frame
    in the second image are marked occluded. A pair depends only on (size, index).
    """
    textures = [path for folder in ("480p", "240p") for path in sorted((data / "davis2016" / "JPEGImages" / folder).glob("*/000[0-4]0.jpg"))]
    if not textures:
        raise InputError(f"{data / 'davis2016'}: DAVIS frames not found (the tuning set is made from them)")
    return [_flying_pair(textures, size, index) for size in sizes for index in range(per_size)]


def _flying_pair(textures: list[Path], size: tuple[int, int], index: int) -> FlowPair:
    height, width = size
    rng = np.random.default_rng([height, width, index])
    chosen = rng.choice(len(textures), size=5, replace=False)
    background = read_image(textures[chosen[0]])
    poses = [(background, None, *_camera_poses(rng, background.shape, size))]
    for texture_index in chosen[1 : 1 + int(rng.integers(2, 5))]:
        texture = read_image(textures[texture_index])
        shape = _blob(rng, rng.uniform(0.08, 0.22) * min(size), texture.shape)
        top, left = (int(rng.integers(0, texture.shape[i] - shape.shape[i] + 1)) for i in (0, 1))
        patch = np.ascontiguousarray(texture[top : top + shape.shape[0], left : left + shape.shape[1]])
        poses.append((patch, shape.astype(np.uint8), *_object_poses(rng, shape, size)))
    # Frame pixels -> texture pixels, as fusionseg.datasets.synthetic renders its clips.
    layers = [Layer(texture, shape, [np.linalg.inv(pose0), np.linalg.inv(pose1)]) for texture, shape, pose0, pose1 in poses]
    params = SynthParams(frames=2, height=height, width=width)
    frames, ids = zip(*(render_layers(layers, t, params) for t in (0, 1)))
    flow = layer_flow(layers, ids[0], 0, 1)
    return FlowPair("dev (synthetic)", f"{width}x{height}-{index}", frames, flow,
                    np.ones((height, width), bool), _visible_in_second(flow, ids))


def _camera_poses(rng: np.random.Generator, texture_shape: tuple, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Texture -> frame maps of the background at both frames: the texture covers the frame at both."""
    height, width = size
    cover = 1.25 * max(height / texture_shape[0], width / texture_shape[1])
    centre_texture = np.array([texture_shape[1], texture_shape[0]]) / 2
    centre_frame = np.array([width, height]) / 2
    first = _affine(cover, 0.0, centre_texture, centre_frame)
    shift = rng.normal(0, 0.015 * width, size=2)
    second = _affine(cover * rng.uniform(0.94, 1.06), rng.uniform(-0.03, 0.03), centre_texture, centre_frame + shift)
    return first, second


def _object_poses(rng: np.random.Generator, shape: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Canvas -> frame maps of a flying object at both frames."""
    height, width = size
    centre_canvas = np.array([shape.shape[1], shape.shape[0]]) / 2
    start = rng.uniform([0.1 * width, 0.1 * height], [0.9 * width, 0.9 * height])
    angle = rng.uniform(0, 2 * np.pi)
    direction = rng.uniform(0, 2 * np.pi)
    travel = rng.uniform(0, 0.15 * width) * np.array([np.cos(direction), np.sin(direction)])
    first = _affine(1.0, angle, centre_canvas, start)
    second = _affine(rng.uniform(0.92, 1.08), angle + rng.uniform(-0.14, 0.14), centre_canvas, start + travel)
    return first, second


def _affine(scale: float, angle: float, source_centre: np.ndarray, target_centre: np.ndarray) -> np.ndarray:
    """3x3 map: rotate and scale about source_centre, which lands on target_centre."""
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    linear = np.array([[c, -s], [s, c]])
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = target_centre - linear @ source_centre
    return matrix


def _blob(rng: np.random.Generator, radius: float, texture_shape: tuple) -> np.ndarray:
    """A star-shaped mask (radius varying smoothly with angle) on a square canvas no larger than the texture."""
    side = min(int(2.6 * radius), *texture_shape[:2])
    ys, xs = np.mgrid[0:side, 0:side] - (side - 1) / 2
    angle = np.arctan2(ys, xs)
    boundary = np.ones_like(angle)
    for harmonic in range(2, 6):
        boundary += rng.uniform(0, 0.5 / harmonic) * np.cos(harmonic * angle + rng.uniform(0, 2 * np.pi))
    return np.hypot(xs, ys) <= min(radius, side / 2 - 1) * boundary / boundary.max()


def _visible_in_second(flow: np.ndarray, ids: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Pixels whose point lands inside the second frame on the same layer (nearest pixel)."""
    height, width = ids[0].shape
    ys, xs = np.mgrid[0:height, 0:width]
    x1 = np.rint(xs + flow[..., 0]).astype(int)
    y1 = np.rint(ys + flow[..., 1]).astype(int)
    inside = (x1 >= 0) & (x1 < width) & (y1 >= 0) & (y1 < height)
    same = np.zeros_like(inside)
    same[inside] = ids[1][y1[inside], x1[inside]] == ids[0][inside]
    return same
