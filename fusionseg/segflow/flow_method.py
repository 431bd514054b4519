"""SegFlow's flow branch as a flow backend of the flow stage (`flow.method: segflow`; fusionseg.segflow
registers it with fusionseg.flow.methods).

The flow stage hands its backends grey frames; the flow branch itself reads grey levels, so it sees
what it sees in `infer-segflow`. Only with seg_to_flow exchange do the segmentation features differ:
here they come from the grey frame repeated in three channels rather than the colour frame.
"""

from __future__ import annotations

import numpy as np
import torch

from fusionseg.errors import ConfigError
from fusionseg.flow.methods import Backend
from fusionseg.segflow.model import load_segflow


def segflow_backend(params: dict, device: torch.device) -> Backend:
    """Grey uint8 image pairs -> float32 flow (B, H, W, 2) from the trained model `params['model']`."""
    if not params.get("model"):
        raise ConfigError("flow.segflow.model: the path of a trained SegFlow checkpoint (segflow.pt) is required")
    net = load_segflow(params["model"]).to(device)

    def run(images0: list[np.ndarray], images1: list[np.ndarray]) -> np.ndarray:
        frame0, frame1 = (_grey_as_rgb(images, device) for images in (images0, images1))
        with torch.inference_mode():
            flow = net.flow(frame0, frame1)
        return flow.float().permute(0, 2, 3, 1).cpu().numpy()

    return run


def _grey_as_rgb(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    grey = torch.from_numpy(np.stack(images)).to(device, torch.float32).unsqueeze(1)
    return grey.expand(-1, 3, -1, -1)
