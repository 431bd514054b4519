"""The training loop shared by the streams and the fusion layer.

SGD with momentum and weight decay, poly learning-rate decay, mixed precision on CUDA, a tqdm bar,
a per-iteration log table (`<out>.log.csv`), and resumable checkpoints (`<out>.resume.pt`, atomic)
holding the model, optimizer, scaler, iteration, log and RNG states, as tensors and plain types only:
the resume file is loaded with weights_only, so a planted one cannot run code. Because each iteration's data
comes from a generator seeded by (seed, iteration), a resumed CPU run ends with exactly the weights
of an uninterrupted one. The resume file also records what the run trained on (`data_identity`), so
a run whose parameters, architecture or data changed starts again from iteration 0 (and says why).
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping
from typing import Sequence as Sequence_

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from fusionseg.errors import InputError
from fusionseg.io import atomic_file, fingerprint, load_torch, save_torch
from fusionseg.models.checkpoint import save_checkpoint

log = logging.getLogger(__name__)

# iteration -> (model inputs, target): the data of one iteration, independent of the run's history.
BatchFn = Callable[[int], tuple[tuple[torch.Tensor, ...], torch.Tensor]]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOG_COLUMNS = ["iteration", "loss", "lr", "images_per_s"]


def resume_path(out: Path) -> Path:
    return out.with_name(out.name + ".resume.pt")


def log_path(out: Path) -> Path:
    return out.with_name(out.name + ".log.csv")


def poly_lr(base_lr: float, iteration: int, iterations: int, power: float) -> float:
    return base_lr * (1 - iteration / iterations) ** power


def data_identity(frames_dirs: Sequence_[str | Path], others: Sequence_[str | Path] = ()) -> dict[str, str]:
    """What a run trains on, recorded in its resume file and checkpoint: frame folders with their
    masks, then the other inputs (manifests, flow images, probability files); see `Trainer`."""
    from fusionseg.datasets.layout import Sequence

    sequences = [Sequence.from_frames_dir(d) for d in frames_dirs]
    return fingerprint(dict.fromkeys([p for s in sequences for p in (s.frames_dir, s.masks_dir)] + [Path(p) for p in others]))


def default_optimizer(
    model: nn.Module | Sequence_[nn.Module],
    params: dict,
    pretrained: nn.Module | Iterable[nn.Parameter] | None = None,
    lr: float | None = None,
    kind: str | None = None,
) -> torch.optim.Optimizer:
    """The one optimiser builder: the paper's SGD with momentum, or AdamW (`optimizer: adamw`, or
    `kind`), over the trainable parameters of `model` (one module or several), at `lr` (default
    params['lr']). With `pretrained` (a module or parameters), those parameters form a second group learning at
    params['backbone_lr_scale'] times the rate (the group's `lr_scale`, which Trainer's schedule
    applies); empty groups are left out.

    AdamW is for networks without normalisation layers, such as U²-Netp with its BatchNorm folded into
    the convolutions: their gradient scales differ by orders of magnitude between layers, and SGD
    at any rate that moves the small layers blows up the large ones (diverged within 5 steps at
    lr 1e-3 on DAVIS crops; AdamW at 1e-4 trains smoothly)."""
    modules = [model] if isinstance(model, nn.Module) else list(model)
    trainable = [p for module in modules for p in module.parameters() if p.requires_grad]
    groups: list[dict] | list[nn.Parameter] = trainable
    if pretrained is not None:
        pretrained_ids = {id(p) for p in (pretrained.parameters() if isinstance(pretrained, nn.Module) else pretrained)}
        groups = [
            {"params": [p for p in trainable if id(p) not in pretrained_ids], "lr_scale": 1.0},
            {"params": [p for p in trainable if id(p) in pretrained_ids], "lr_scale": params["backbone_lr_scale"]},
        ]
        groups = [g for g in groups if g["params"]]
    lr = params["lr"] if lr is None else lr
    if (kind or params.get("optimizer", "sgd")) == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=params["weight_decay"])
    return torch.optim.SGD(groups, lr=lr, momentum=params["momentum"], weight_decay=params["weight_decay"])


class Trainer:
    """Runs `params['iterations']` SGD steps on `model`, resuming from `<out>.resume.pt` if present."""

    def __init__(
        self,
        model: nn.Module,
        params: dict,
        out: str | Path,
        device: torch.device,
        optimizer: torch.optim.Optimizer | None = None,
        data_identity: Mapping[str, str] | None = None,
    ) -> None:
        """`optimizer` defaults to SGD (momentum, weight decay) over the trainable parameters; a system
        with other needs (Adam for memory networks) passes its own. Its groups' learning rates follow
        the poly schedule, each scaled by the group's `lr_scale` (default 1). `data_identity` names
        the training inputs (input -> digest: `fusionseg.io.fingerprint(paths)`); a resume file
        written for other data is not resumed."""
        self.model = model.to(device)
        self.params = params
        self.data_identity = dict(data_identity or {})
        self.out = Path(out)
        self.device = device
        self.use_amp = device.type == "cuda" and params["amp"]
        self.optimizer = optimizer or default_optimizer(model, params)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.iteration = 0
        self.rows: list[dict] = []

    def fit(self, next_batch: BatchFn, loss_fn: LossFn) -> None:
        """Train to the last iteration, then write the final checkpoint and log; drop the resume file."""
        self._resume()
        total = self.params["iterations"]
        self.model.train()
        bar = tqdm(range(self.iteration, total), initial=self.iteration, total=total, desc=f"train {self.out.name}")
        for iteration in bar:
            row = self._step(iteration, next_batch, loss_fn)
            bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
            if (iteration + 1) % self.params["log_every"] == 0:
                log.info(
                    "iteration %d/%d loss %.4f lr %.3g %.1f images/s",
                    row["iteration"], total, row["loss"], row["lr"], row["images_per_s"],
                )
            if (iteration + 1) % self.params["checkpoint_every"] == 0 and iteration + 1 < total:
                self._save_resume()
        save_checkpoint(self.out, self.model.cpu(), self.params, self.iteration, self.data_identity)
        self._write_log()
        resume_path(self.out).unlink(missing_ok=True)

    def _step(self, iteration: int, next_batch: BatchFn, loss_fn: LossFn) -> dict:
        start = time.perf_counter()
        lr = poly_lr(self.params["lr"], iteration, self.params["iterations"], self.params["lr_power"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        inputs, target = next_batch(iteration)
        inputs = tuple(x.to(self.device, non_blocking=True) for x in inputs)
        target = target.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, enabled=self.use_amp):
            output = self.model(*inputs)
        loss = loss_fn(output.float(), target)
        if not torch.isfinite(loss):
            raise InputError(f"{self.out}: training diverged at iteration {iteration} (loss {loss.item()}); lower lr")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.iteration = iteration + 1
        elapsed = time.perf_counter() - start
        row = {"iteration": self.iteration, "loss": float(loss.detach()), "lr": lr, "images_per_s": inputs[0].shape[0] / elapsed}
        self.rows.append(row)
        return row

    def _save_resume(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iteration,
            "config": self.params,
            "arch": dict(self.model.arch),
            "log": self.rows,
            "rng": _rng_states(),
            "data": self.data_identity,
        }
        save_torch(resume_path(self.out), state)
        self._write_log()

    def _resume(self) -> None:
        path = resume_path(self.out)
        if not path.is_file():
            return
        try:
            state = load_torch(path, "resume file")
        except InputError as exc:  # a resume file is only a cache: a damaged or foreign one restarts training
            log.warning("%s; starting from iteration 0", exc)
            return
        if not isinstance(state, dict) or state.get("config") != self.params or state.get("arch") != dict(self.model.arch):
            log.warning("%s: written with other parameters or architecture; starting from iteration 0", path)
            return
        changed = _changed_inputs(state.get("data", {}), self.data_identity)
        if changed:
            log.warning("%s: written for other training data (%s); starting from iteration 0", path, changed)
            return
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.iteration, self.rows = state["iteration"], state["log"]
        _set_rng_states(state["rng"])
        log.info("%s: resuming at iteration %d", path, self.iteration)

    def _write_log(self) -> None:
        with atomic_file(log_path(self.out)) as tmp:
            pd.DataFrame(self.rows, columns=LOG_COLUMNS).to_csv(tmp, index=False)


def _changed_inputs(recorded: Mapping[str, str], current: Mapping[str, str]) -> str:
    """'' when both name the same inputs with the same digests; else which differ, for the log."""
    parts = []
    for label, names in (
        ("changed", [k for k in current if k in recorded and recorded[k] != current[k]]),
        ("added", [k for k in current if k not in recorded]),
        ("removed", [k for k in recorded if k not in current]),
    ):
        if names:
            parts.append(f"{label}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}")
    return "; ".join(parts)


def _rng_states() -> dict:
    """Every RNG's state as tensors and plain types (what torch.load with weights_only reads back)."""
    _, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    keys = numpy_state["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, numpy_state["pos"], numpy_state["has_gauss"], numpy_state["gauss"]))
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(python_state["internal"].tolist()), python_state["gauss_next"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
