"""Flow backends behind one interface: the PyTorch TV-L1, three OpenCV CPU methods, and methods that
other packages register (`register_method`: SegFlow's flow branch, method `segflow`, registered when
`fusionseg.segflow` is imported, which the `fusionseg` command always does).

A backend maps two lists of grey uint8 images (all the same size) to float32 flow (B, H, W, 2).
Parameters are the method's sub-section of the config's `flow` section, checked against the schema,
so `--params '{"warps": 5}'` and config.yaml take the same keys and a typo is named.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

import numpy as np

from fusionseg.config import section_params
from fusionseg.devices import resolve_device
from fusionseg.errors import ConfigError
from fusionseg.flow.options import METHODS

if TYPE_CHECKING:
    import torch


Backend = Callable[[list[np.ndarray], list[np.ndarray]], np.ndarray]
# (the method's parameters, the resolved device) -> its backend
BackendFactory = Callable[[dict, "torch.device"], Backend]

log = logging.getLogger(__name__)
# Methods of METHODS that other packages provide (register_method).
_REGISTERED: dict[str, BackendFactory] = {}


def register_method(method: str, factory: BackendFactory) -> None:
    """Provide the flow method `method` (one of METHODS, so the config and the CLI accept it):
    `factory(params, device)` returns its backend. The package that owns the method calls this when
    it is imported, so that this package never imports it."""
    if method not in METHODS:
        raise ValueError(f"flow method {method!r} is not one of {', '.join(METHODS)}")
    _REGISTERED[method] = factory


def config_key(method: str) -> str:
    """The method's sub-section name under `flow` in the config (tvl1-opencv -> tvl1_opencv)."""
    return method.replace("-", "_")


def method_params(method: str, params: dict | str | None = None) -> dict:
    """The method's parameters: `params` (a dict or JSON text) over the schema defaults, validated."""
    if method not in METHODS:
        raise ConfigError(f"flow.method: unknown method '{method}' (choose from {', '.join(METHODS)})")
    return section_params(f"flow.{config_key(method)}", params)


def make_backend(method: str, params: dict | str | None = None, device: str = "auto") -> Backend:
    """A callable computing flow for batches of grey image pairs with the given method."""
    params = method_params(method, params)
    if method in _REGISTERED:
        return _REGISTERED[method](params, resolve_device(device))
    if method == "tvl1":
        return _tvl1_backend(params, resolve_device(device))
    opencv = {"dis": _dis_pair, "farneback": _farneback_pair, "tvl1-opencv": _opencv_tvl1_pair}
    if method not in opencv:
        raise ConfigError(f"flow.method: {method} comes from a package that has not registered it (segflow: import fusionseg.segflow)")
    if device == "cuda":
        log.warning("flow method %s runs on the CPU (OpenCV); --device cuda is ignored", method)
    single = opencv[method](params)
    return lambda images0, images1: np.stack([single(a, b) for a, b in zip(images0, images1)])


def _tvl1_backend(params: dict, device: torch.device) -> Backend:
    import torch

    from fusionseg.flow.tvl1 import TVL1Params, tvl1_flow

    solver_params = TVL1Params.from_dict(params)

    def run(images0: list[np.ndarray], images1: list[np.ndarray]) -> np.ndarray:
        batch0 = torch.from_numpy(np.stack(images0)).to(device, torch.float32).unsqueeze(1)
        batch1 = torch.from_numpy(np.stack(images1)).to(device, torch.float32).unsqueeze(1)
        flow = tvl1_flow(batch0, batch1, solver_params)
        return flow.permute(0, 2, 3, 1).cpu().numpy()

    return run


def _dis_pair(params: dict) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    import cv2

    presets = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }
    solver = cv2.DISOpticalFlow_create(presets[params["preset"]])
    return lambda a, b: solver.calc(a, b, None)


def _farneback_pair(params: dict) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    import cv2

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(
            a, b, None, params["pyr_scale"], params["levels"], params["winsize"],
            params["iterations"], params["poly_n"], params["poly_sigma"], 0,
        )

    return run


def _opencv_tvl1_pair(params: dict) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    import cv2

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # A fresh solver per pair: calc() lowers the solver's own scale count for good when an image
        # is too small for it (a 96x128 pair leaves nscales at 3), which would shorten every later pyramid.
        solver = cv2.optflow.DualTVL1OpticalFlow_create(
            scaleStep=params["scale_step"], nscales=params["nscales"], warps=params["warps"]
        )
        return solver.calc(a, b, None)

    return run


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) to grey uint8 (H, W), the input every backend takes."""
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
