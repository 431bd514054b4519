"""Model checkpoints (docs/architecture.md): a dict with `model` (state_dict), `arch`, `config`, `iteration`.

`arch` says how to rebuild the network (kind, stream, backbone), so inference needs only the file;
loading checks it against what the caller expects and names the file in every error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from torch import nn

from fusionseg.errors import InputError
from fusionseg.io import load_torch, save_torch
from fusionseg.models.fusion import FusionModel
from fusionseg.models.stream import stream_from_arch

CHECKPOINT_KEYS = ("model", "arch", "config", "iteration")


def save_checkpoint(
    path: str | Path, model: nn.Module, config: dict, iteration: int, data_identity: dict[str, str] | None = None
) -> None:
    """Write the final checkpoint atomically; `data_identity` (digests of the training inputs) is kept
    as provenance, and lets a later run tell whether the checkpoint was trained on the same data."""
    payload = {"model": model.state_dict(), "arch": dict(model.arch), "config": config, "iteration": iteration}
    if data_identity:
        payload["data_identity"] = dict(data_identity)
    save_torch(path, payload)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict; an InputError naming the file if it is missing, corrupt or incomplete."""
    payload = load_torch(path, "checkpoint")
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise InputError(f"{path}: not a fusionseg checkpoint (missing {', '.join(missing)})")
    return payload


def load_model(
    path: str | Path, kind: str, stream: str | None = None, build: Callable[[dict], nn.Module] | None = None
) -> nn.Module:
    """Rebuild the network a checkpoint file describes and load its weights (eval mode): the one
    checkpoint loader. `kind` is 'stream', 'fusion', or a system's kind ('tsn', 'segflow') with the
    `build(arch)` that makes its network (the systems sit above this package)."""
    return model_from_checkpoint(read_checkpoint(path), path, kind, stream, build)


def model_from_checkpoint(
    payload: dict[str, Any],
    path: str | Path,
    kind: str,
    stream: str | None = None,
    build: Callable[[dict], nn.Module] | None = None,
) -> nn.Module:
    """The network of a checkpoint dict already read from `path` (named in every error)."""
    arch = payload["arch"]
    if not isinstance(arch, dict) or arch.get("kind") != kind or (stream is not None and arch.get("stream") != stream):
        wanted = f"{kind} ({stream})" if stream else kind
        if isinstance(arch, dict):
            found = f"{arch.get('kind')} ({arch.get('stream')})" if arch.get("stream") else arch.get("kind")
        else:
            found = arch
        raise InputError(f"{path}: checkpoint is a {found} model, expected a {wanted} model")
    if build is None:
        build = (lambda _arch: FusionModel()) if kind == "fusion" else stream_from_arch
    try:
        model = build(arch)
        model.load_state_dict(payload["model"], strict=True)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:  # a missing or impossible arch entry
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: weights do not match the recorded architecture {arch} ({first})") from exc
    return model.eval()
