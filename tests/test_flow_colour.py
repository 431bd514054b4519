"""The Middlebury colour coding against an independent per-pixel transcription of the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusionseg.flow.colour import colour_wheel, flow_to_rgb


def reference_wheel() -> list[list[float]]:
    """makeColorwheel.m, transcribed entry by entry."""
    wheel = []
    for i in range(15):
        wheel.append([255, math.floor(255 * i / 15), 0])
    for i in range(6):
        wheel.append([255 - math.floor(255 * i / 6), 255, 0])
    for i in range(4):
        wheel.append([0, 255, math.floor(255 * i / 4)])
    for i in range(11):
        wheel.append([0, 255 - math.floor(255 * i / 11), 255])
    for i in range(13):
        wheel.append([math.floor(255 * i / 13), 0, 255])
    for i in range(6):
        wheel.append([255, 0, 255 - math.floor(255 * i / 6)])
    return wheel


def reference_pixel(u: float, v: float, max_rad: float) -> tuple[int, int, int]:
    """flowToColor.m + computeColor.m for one (known) pixel, with MATLAB's 1-based wheel index."""
    wheel = reference_wheel()
    ncols = len(wheel)
    u, v = u / (max_rad + 2.220446049250313e-16), v / (max_rad + 2.220446049250313e-16)
    rad = math.sqrt(u * u + v * v)
    a = math.atan2(-v, -u) / math.pi
    fk = (a + 1) / 2 * (ncols - 1) + 1
    k0 = math.floor(fk)
    k1 = 1 if k0 + 1 == ncols + 1 else k0 + 1
    f = fk - k0
    out = []
    for channel in range(3):
        col = (1 - f) * wheel[k0 - 1][channel] / 255 + f * wheel[k1 - 1][channel] / 255
        col = 1 - rad * (1 - col) if rad <= 1 else col * 0.75
        out.append(math.floor(255 * col))
    return tuple(out)


COMPASS = [(math.cos(k * math.pi / 4), math.sin(k * math.pi / 4)) for k in range(8)]


def test_wheel_matches_reference() -> None:
    assert colour_wheel().shape == (55, 3)
    np.testing.assert_array_equal(colour_wheel(), np.array(reference_wheel(), dtype=float))


@pytest.mark.parametrize("scale", [0.25, 1.0])
def test_compass_directions_match_reference(scale: float) -> None:
    flow = np.array([[[scale * u, scale * v] for u, v in COMPASS]], dtype=np.float32)
    ours = flow_to_rgb(flow, max_flow=1.0)
    for index, (u, v) in enumerate(flow[0]):
        expected = reference_pixel(float(u), float(v), 1.0)
        assert np.abs(ours[0, index].astype(int) - expected).max() <= 1, (u, v, ours[0, index], expected)


def test_known_hues() -> None:
    """Rightward motion is red, leftward cyan, downward (v > 0) orange-yellow, upward blue-violet."""
    flow = np.array([[[1, 0], [-1, 0], [0, 1], [0, -1]]], dtype=np.float32)
    right, left, down, up = (tuple(int(c) for c in p) for p in flow_to_rgb(flow)[0])
    assert right == (255, 0, 0)
    assert left[0] == 0 and left[1] > 200 and left[2] > 200
    assert down[0] == 255 and down[1] > 200 and down[2] == 0
    assert up[2] == 255 and up[1] == 0


def test_random_field_per_frame_maximum_matches_reference() -> None:
    rng = np.random.default_rng(0)
    flow = rng.normal(scale=3.0, size=(6, 7, 2)).astype(np.float32)
    max_rad = float(np.sqrt((flow.astype(np.float64) ** 2).sum(-1)).max())
    ours = flow_to_rgb(flow).astype(int)
    for y in range(6):
        for x in range(7):
            expected = reference_pixel(float(flow[y, x, 0]), float(flow[y, x, 1]), max_rad)
            assert np.abs(ours[y, x] - expected).max() <= 1


def test_fixed_maximum_darkens_longer_vectors_without_clipping_signs() -> None:
    flow = np.array([[[-3.0, -4.0], [1.5, -2.0], [0.3, 0.4]]], dtype=np.float32)
    ours = flow_to_rgb(flow, max_flow=2.0).astype(int)
    for x in range(3):
        expected = reference_pixel(float(flow[0, x, 0]), float(flow[0, x, 1]), 2.0)
        assert np.abs(ours[0, x] - expected).max() <= 1
    # Darkened (col * 0.75): no channel can reach 255 beyond the maximum.
    assert ours[0, 0].max() < 255 and ours[0, 1].max() < 255


def test_zero_and_unknown_flow() -> None:
    flow = np.zeros((2, 3, 2), dtype=np.float32)
    flow[0, 0] = (1e10, 0.0)
    flow[0, 1] = (0.0, -2e9)
    flow[1, 2] = (np.nan, 1.0)
    rgb = flow_to_rgb(flow)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    for y, x in [(0, 0), (0, 1), (1, 2)]:
        assert (rgb[y, x] == 0).all()
    assert (rgb[0, 2] == 255).all() and (rgb[1, 0] == 255).all()


def test_unknown_pixels_do_not_set_the_normalisation() -> None:
    flow = np.zeros((1, 2, 2), dtype=np.float32)
    flow[0, 0] = (2.0, 0.0)
    flow[0, 1] = (1e10, 1e10)
    assert tuple(flow_to_rgb(flow)[0, 0]) == (255, 0, 0)


@pytest.mark.shared_data
def test_hue_convention_matches_fusionseg_release(shared_data) -> None:
    """Our flow + coding against the original release's motion images where the bear moves."""
    from fusionseg.flow.methods import make_backend, to_grey
    from fusionseg.io import read_image

    sample = shared_data / "fusionseg_reference" / "sample"
    frames = [to_grey(read_image(sample / "images" / f"{i:05d}.jpg")) for i in (4, 5)]
    flow = make_backend("tvl1", {}, "cpu")([frames[0]], [frames[1]])[0]
    reference = read_image(sample / "motion_images" / "00004.png").astype(int)
    moving = reference.min(axis=-1) < 170  # saturated: the fastest-moving pixels

    def median_difference(candidate: np.ndarray) -> float:
        return float(np.median(np.abs(flow_to_rgb(candidate).astype(int) - reference)[moving]))

    ours = median_difference(flow)
    assert ours <= 8
    for wrong in (flow * [1, -1], flow * [-1, 1], flow[..., ::-1]):
        assert median_difference(wrong) > ours
