"""Middlebury colour coding of optical flow (Baker et al., IJCV 2011, flowToColor / computeColor).

Hue encodes direction and saturation encodes magnitude: a 55-entry colour wheel (red-yellow 15,
yellow-green 6, green-cyan 4, cyan-blue 11, blue-magenta 13, magenta-red 6) is indexed by
atan2(-v, -u) / pi and interpolated linearly between neighbouring entries; magnitude 0 is white and
the normalising maximum is the fully saturated wheel colour. These are the motion images FusionSeg's
motion stream sees.
"""

from __future__ import annotations

import numpy as np

from fusionseg.io.flo import UNKNOWN_FLOW_THRESHOLD

# (segment length, channel that ramps, direction of the ramp, channel held at 255), wheel order.
_SEGMENTS = (
    (15, 1, +1, 0),  # red -> yellow: green rises
    (6, 0, -1, 1),  # yellow -> green: red falls
    (4, 2, +1, 1),  # green -> cyan: blue rises
    (11, 1, -1, 2),  # cyan -> blue: green falls
    (13, 0, +1, 2),  # blue -> magenta: red rises
    (6, 2, -1, 0),  # magenta -> red: blue falls
)
# The reference darkens vectors longer than the normalising maximum (only possible with a fixed one).
_OUT_OF_RANGE_DIMMING = 0.75


def colour_wheel() -> np.ndarray:
    """The reference's 55 x 3 colour wheel, values 0..255 as float64."""
    rows = []
    for length, ramp_channel, direction, full_channel in _SEGMENTS:
        ramp = np.floor(255.0 * np.arange(length) / length)
        segment = np.zeros((length, 3))
        segment[:, full_channel] = 255.0
        segment[:, ramp_channel] = ramp if direction > 0 else 255.0 - ramp
        rows.append(segment)
    return np.concatenate(rows)


def flow_to_rgb(flow: np.ndarray, max_flow: float | None = None) -> np.ndarray:
    """Colour-code a (H, W, 2) flow as (H, W, 3) uint8 RGB.

    `max_flow` None normalises by the frame's own largest magnitude (FusionSeg's choice); a number
    fixes the magnitude of full saturation across frames, and longer vectors are darkened as in the
    reference. Unknown flow (|u| or |v| > 1e9) and NaN are black.
    """
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must have shape (H, W, 2), got {flow.shape}")
    u, v = flow[..., 0].copy(), flow[..., 1].copy()
    unknown = (np.abs(u) > UNKNOWN_FLOW_THRESHOLD) | (np.abs(v) > UNKNOWN_FLOW_THRESHOLD) | np.isnan(u) | np.isnan(v)
    u[unknown] = 0.0
    v[unknown] = 0.0
    if max_flow is None:
        max_flow = float(np.sqrt(u * u + v * v).max(initial=0.0))
    scale = 1.0 / (max_flow + np.finfo(np.float64).eps)
    rgb = _compute_colour(u * scale, v * scale)
    rgb[unknown] = 0
    return rgb


def _compute_colour(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The reference computeColor on flow already divided by the normalising maximum."""
    wheel = colour_wheel() / 255.0
    count = len(wheel)
    radius = np.sqrt(u * u + v * v)
    angle = np.arctan2(-v, -u) / np.pi
    position = (angle + 1.0) / 2.0 * (count - 1)
    lower = np.floor(position).astype(int)
    upper = (lower + 1) % count
    weight = (position - lower)[..., None]
    colour = (1.0 - weight) * wheel[lower] + weight * wheel[upper]
    inside = (radius <= 1.0)[..., None]
    colour = np.where(inside, 1.0 - radius[..., None] * (1.0 - colour), colour * _OUT_OF_RANGE_DIMMING)
    return np.floor(255.0 * colour).astype(np.uint8)

