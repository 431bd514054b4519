"""TV-L1 optical flow (Zach, Pock, Bischof 2007; Wedel et al. 2009) written with PyTorch tensor ops.

The duality-based scheme alternates a pointwise thresholding step on the linearised data term with a
Chambolle projection step for the total variation, inside a coarse-to-fine pyramid with several
bicubic warps per level and a median filter after each warp. Everything is batched over frame pairs
and runs unchanged on CUDA or the CPU (where only the median filter hands off to OpenCV, for speed).
No learned weights.

Large motion (the ablation is in benchmarks/results/flow.md) needs two things:
- a pyramid as deep as the image allows: levels shrink by `scale_step` until a side would fall below
  `min_size`, so a wide frame gets a coarser top level than a small one and its largest motions
  shrink to a few pixels there;
- no data term where the flow points outside the second image: bicubic warping with replicated
  borders compares such pixels with the smeared border, and that false evidence drags the flow of
  objects entering or leaving the frame, and of the whole frame under fast camera motion.

Each pair of a batch gets the flow it would get alone: the early stop is tested per pair, and a pair
that has converged leaves the batch while the others iterate on.

Tensors are (B, C, H, W) float32; images are grey levels in [0, 255]; flow channels are (u, v) in
pixels, u along x (columns) and v along y (rows).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

# How often (in inner iterations) the convergence test runs: each test is a device sync on CUDA.
_CONVERGENCE_CHECK_EVERY = 5
# Window sizes cv2.medianBlur accepts for float32 images.
_OPENCV_MEDIAN_SIZES = (3, 5)


@dataclass(frozen=True)
class TVL1Params:
    """Solver parameters; names match the config's `flow.tvl1` section."""

    tau: float = 0.25
    lambda_: float = 0.18
    theta: float = 0.3
    scale_step: float = 0.5
    min_size: int = 16
    max_levels: int | None = None
    warps: int = 7
    iterations: int = 50
    median_filter: int = 5
    epsilon: float = 0.005

    @classmethod
    def from_dict(cls, values: dict) -> TVL1Params:
        """From a config section; keys that are not solver parameters are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def tvl1_flow(image0: torch.Tensor, image1: torch.Tensor, params: TVL1Params = TVL1Params()) -> torch.Tensor:
    """Flow from image0 to image1 for a batch of grey images (B, 1, H, W) in [0, 255]: (B, 2, H, W)."""
    if image0.shape != image1.shape or image0.dim() != 4 or image0.shape[1] != 1:
        raise ValueError(f"expected two (B, 1, H, W) batches of equal shape, got {tuple(image0.shape)} and {tuple(image1.shape)}")
    with torch.inference_mode():
        pyramid0 = build_pyramid(image0.float(), params)
        pyramid1 = build_pyramid(image1.float(), params)
        flow = torch.zeros_like(pyramid0[-1]).repeat(1, 2, 1, 1)
        for level in reversed(range(len(pyramid0))):
            flow = _resize_flow(flow, pyramid0[level].shape[-2:])
            flow = _solve_level(pyramid0[level], pyramid1[level], flow, params)
        return flow


def pyramid_sizes(height: int, width: int, params: TVL1Params) -> list[tuple[int, int]]:
    """(height, width) of every level, finest first: each `scale_step` times the finest's to the level's
    power, down to the last whose shorter side is still at least `min_size` (and at most `max_levels`)."""
    sizes = [(height, width)]
    while params.max_levels is None or len(sizes) < params.max_levels:
        scale = params.scale_step ** len(sizes)
        size = (round(height * scale), round(width * scale))
        if min(size) < params.min_size:
            break
        sizes.append(size)
    return sizes


def build_pyramid(image: torch.Tensor, params: TVL1Params) -> list[torch.Tensor]:
    """The image at every size of `pyramid_sizes`, finest first."""
    # Anti-aliased resampling of the finest image: no aliasing, and no blur compounding level to level.
    return [image] + [
        F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
        for size in pyramid_sizes(*image.shape[-2:], params)[1:]
    ]


def _resize_flow(flow: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Resample flow to `size`, scaling the vectors by the change in width and height."""
    if flow.shape[-2:] == size:
        return flow
    scale = torch.tensor([size[1] / flow.shape[-1], size[0] / flow.shape[-2]], device=flow.device)
    resized = F.interpolate(flow, size=tuple(size), mode="bilinear", align_corners=False)
    return resized * scale.view(1, 2, 1, 1)


def _solve_level(image0: torch.Tensor, image1: torch.Tensor, flow: torch.Tensor, params: TVL1Params) -> torch.Tensor:
    """Refine `flow` at one pyramid level: warp, minimise the linearised energy, median-filter; repeat."""
    image1_with_gradient = torch.cat([image1, image_gradient(image1)], dim=1)
    dual = torch.zeros(flow.shape[0], 4, *flow.shape[-2:], device=flow.device)
    for _ in range(params.warps):
        warped = warp(image1_with_gradient, flow)
        flow, dual = _minimise_linearised(image0, warped, lands_inside(flow), flow, dual, params)
        flow = median_filter(flow, params.median_filter)
    return flow


def _minimise_linearised(
    image0: torch.Tensor,
    warped: torch.Tensor,
    inside: torch.Tensor,
    flow: torch.Tensor,
    dual: torch.Tensor,
    params: TVL1Params,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inner iterations on the data term linearised around `flow`: the new (flow, dual).

    Every pair stops on its own test: once its flow has settled it leaves the batch, keeping the
    values it would have had alone, and the remaining pairs iterate on (a smaller batch, so the early
    stop saves time per pair too).
    """
    # Outside the second image the warped values are replicated borders, not evidence: no data term.
    gradient = warped[:, 1:] * inside
    # rho(u) = I1(x + u0) + grad I1 . (u - u0) - I0(x), split into a constant part and a dot product.
    rho_constant = (warped[:, :1] - image0 - (gradient * flow).sum(1, keepdim=True)) * inside
    negative_inverse_norm = -1.0 / (gradient * gradient).sum(1, keepdim=True).clamp_min(1e-9)
    state = _InnerState(flow, dual, gradient, rho_constant, negative_inverse_norm)
    new_flow, new_dual = torch.empty_like(flow), torch.empty_like(dual)
    pairs = torch.arange(flow.shape[0], device=flow.device)
    tolerance = params.epsilon**2
    for iteration in range(params.iterations):
        check = (iteration + 1) % _CONVERGENCE_CHECK_EVERY == 0
        state.step(params, keep_previous=check)
        if not check:
            continue
        moving = state.still_moving(tolerance)
        remaining = int(moving.sum())
        if remaining == len(pairs):
            continue
        settled = ~moving
        new_flow[pairs[settled]], new_dual[pairs[settled]] = state.flow[settled], state.dual[settled]
        if remaining == 0:
            return new_flow, new_dual
        state, pairs = state.select(moving), pairs[moving]
    new_flow[pairs], new_dual[pairs] = state.flow, state.dual
    return new_flow, new_dual


class _InnerState:
    """Primal flow, dual field, the linearised data term and scratch buffers of some pairs at one warp.

    Every step writes into buffers allocated here: on the CPU, fresh multi-megabyte temporaries cost
    page faults that dominate the arithmetic.
    """

    def __init__(
        self,
        flow: torch.Tensor,
        dual: torch.Tensor,
        gradient: torch.Tensor,
        rho_constant: torch.Tensor,
        negative_inverse_norm: torch.Tensor,
    ) -> None:
        self.flow = flow.clone()
        self.dual = dual.clone()
        self.dual_x, self.dual_y = self.dual[:, 0:2], self.dual[:, 2:4]
        self.gradient = gradient
        self.rho_constant = rho_constant
        self.negative_inverse_norm = negative_inverse_norm
        self.previous = torch.empty_like(flow)
        self.rho = torch.empty_like(flow[:, :1])
        self.scratch = torch.empty_like(flow)
        # Forward differences are zero on the last column / row (Neumann boundary): set once, never written.
        self.grad_x = torch.zeros_like(flow)
        self.grad_y = torch.zeros_like(flow)
        self.magnitude = torch.empty_like(flow)

    def select(self, keep: torch.Tensor) -> _InnerState:
        """The same state for the pairs where `keep` is true."""
        return _InnerState(
            self.flow[keep], self.dual[keep], self.gradient[keep], self.rho_constant[keep], self.negative_inverse_norm[keep]
        )

    def step(self, params: TVL1Params, keep_previous: bool) -> None:
        flow, scratch, gradient = self.flow, self.scratch, self.gradient
        torch.addcmul(self.rho_constant, gradient[:, :1], flow[:, :1], out=self.rho)
        self.rho.addcmul_(gradient[:, 1:], flow[:, 1:])
        # The thresholding operator of Zach et al. is the Newton step clamped to [-lambda*theta, lambda*theta].
        threshold = params.lambda_ * params.theta
        step = self.rho.mul_(self.negative_inverse_norm).clamp_(-threshold, threshold)
        self._divergence(out=scratch)
        if keep_previous:
            self.previous.copy_(flow)
        flow.addcmul_(gradient, step).add_(scratch, alpha=params.theta)
        self._update_dual(params.tau / params.theta)

    def still_moving(self, tolerance: float) -> torch.Tensor:
        """Per pair: is the mean squared flow change of the last iteration at least `tolerance`?"""
        change = torch.sub(self.flow, self.previous, out=self.scratch).square_().sum(1).mean(dim=(-2, -1))
        return change >= tolerance

    def _divergence(self, out: torch.Tensor) -> None:
        """Backward-difference divergence of (p_x, p_y), the adjoint of the forward gradient."""
        torch.add(self.dual_x, self.dual_y, out=out)
        out[..., 1:].sub_(self.dual_x[..., :-1])
        out[..., 1:, :].sub_(self.dual_y[..., :-1, :])

    def _update_dual(self, step_ratio: float) -> None:
        """Chambolle's projected step on the dual variables with the forward-difference flow gradient."""
        flow = self.flow
        torch.sub(flow[..., 1:], flow[..., :-1], out=self.grad_x[..., :-1])
        torch.sub(flow[..., 1:, :], flow[..., :-1, :], out=self.grad_y[..., :-1, :])
        magnitude = torch.hypot(self.grad_x, self.grad_y, out=self.magnitude).mul_(step_ratio).add_(1.0)
        self.dual_x.add_(self.grad_x, alpha=step_ratio).div_(magnitude)
        self.dual_y.add_(self.grad_y, alpha=step_ratio).div_(magnitude)


def image_gradient(image: torch.Tensor) -> torch.Tensor:
    """Central differences with replicated borders: (B, 2, H, W) = (d/dx, d/dy)."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    grad_x = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) * 0.5
    grad_y = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) * 0.5
    return torch.cat([grad_x, grad_y], dim=1)


def _target_coordinates(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x + u and y + v: where each pixel's flow lands, in pixels (B, H, W) each."""
    height, width = flow.shape[-2:]
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1)
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width)
    return xs + flow[:, 0], ys + flow[:, 1]


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `image` at x + flow(x), bicubic with replicated borders.

    Bicubic as in OpenCV's TV-L1: bilinear warping smooths the warped image and its gradients, which
    cost about 0.08 pixels of end-point error on Middlebury Grove2.
    """
    height, width = flow.shape[-2:]
    target_x, target_y = _target_coordinates(flow)
    grid_x = target_x * (2.0 / max(width - 1, 1)) - 1.0
    grid_y = target_y * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack([grid_x, grid_y], dim=-1)
    return F.grid_sample(image, grid, mode="bicubic", padding_mode="border", align_corners=True)


def lands_inside(flow: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) float: 1 where x + flow(x) is inside the image (pixel centres, borders included), else 0."""
    height, width = flow.shape[-2:]
    target_x, target_y = _target_coordinates(flow)
    inside = (target_x >= 0) & (target_x <= width - 1) & (target_y >= 0) & (target_y <= height - 1)
    return inside.unsqueeze(1).to(flow.dtype)


def median_filter(flow: torch.Tensor, size: int) -> torch.Tensor:
    """Per-channel median over a size x size window (replicated borders); size < 2 is the identity."""
    if size < 2:
        return flow
    if flow.device.type == "cpu" and size in _OPENCV_MEDIAN_SIZES:
        return _median_filter_opencv(flow, size)
    pad = size // 2
    padded = F.pad(flow, (pad, size - 1 - pad, pad, size - 1 - pad), mode="replicate")
    windows = padded.unfold(2, size, 1).unfold(3, size, 1)
    return windows.reshape(*flow.shape, size * size).median(dim=-1).values


def _median_filter_opencv(flow: torch.Tensor, size: int) -> torch.Tensor:
    """The same median with OpenCV's sorting networks: an order of magnitude faster on the CPU."""
    import cv2

    planes = flow.contiguous().numpy().reshape(-1, *flow.shape[-2:])
    filtered = [cv2.medianBlur(plane, size) for plane in planes]
    return torch.from_numpy(np.stack(filtered)).view(flow.shape)
