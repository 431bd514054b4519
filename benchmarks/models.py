"""Training and inference throughput of the stream model per backbone, side by side in one run.

For each backbone (efficientnet_lite0, resnet50, resnet101; random weights: speed does not depend
on them) at 854x480 (a DAVIS frame): training images/s (forward + backward + SGD step, batch 2) and
inference frames/s (batch 2, no grad), on the CPU and, when present, on CUDA (mixed precision).
Each case runs in its own subprocess so its peak resident memory (ru_maxrss) is its own.

    python benchmarks/models.py [--height 480 --width 854 --steps 3 --threads 2]

Writes benchmarks/results/models.csv and .md, with the machine's load average (the CPU is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

BACKBONES = ("efficientnet_lite0", "resnet50", "resnet101")
RESULTS = Path(__file__).resolve().parent / "results"


def measure(backbone: str, mode: str, device: str, height: int, width: int, batch: int, steps: int, threads: int) -> dict:
    """One case, in this process: seconds per step after one warm-up step."""
    import resource

    import torch
    import torch.nn.functional as F

    from fusionseg.models import StreamModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = StreamModel(backbone, "none").to(device)
    images = torch.rand(batch, 3, height, width, device=device) * 255
    target = torch.randint(0, 2, (batch, height, width), device=device)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    use_amp = device == "cuda"

    def step() -> None:
        if mode == "train":
            model.train()
            with torch.autocast(device, enabled=use_amp):
                loss = F.cross_entropy(model(images).float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        else:
            model.eval()
            with torch.no_grad(), torch.autocast(device, enabled=use_amp):
                model(images)
        if device == "cuda":
            torch.cuda.synchronize()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"backbone": backbone, "mode": mode, "device": device, "batch": batch, "height": height, "width": width,
           "s_per_step": seconds, "images_per_s": batch / seconds, "peak_rss_mb": peak_mb}
    if device == "cuda":
        row["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def run_case(args: argparse.Namespace, backbone: str, mode: str, device: str) -> dict:
    command = [sys.executable, __file__, "--case", json.dumps([backbone, mode, device]),
               "--height", str(args.height), "--width", str(args.width), "--batch", str(args.batch),
               "--steps", str(args.steps), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        backbone, mode, device = json.loads(args.case)
        print(json.dumps(measure(backbone, mode, device, args.height, args.width, args.batch, args.steps, args.threads)))
        return

    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    load_before = os.getloadavg()
    rows = [run_case(args, b, m, d) for d in devices for b in BACKBONES for m in ("train", "infer")]
    load_after = os.getloadavg()
    write_results(pd.DataFrame(rows), args, load_before, load_after)


def write_results(table: pd.DataFrame, args: argparse.Namespace, load_before: tuple, load_after: tuple) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "models.csv", index=False)
    shown = table.copy()
    for column in ("s_per_step", "images_per_s", "peak_rss_mb", "peak_gpu_mb"):
        if column in shown:
            shown[column] = shown[column].map(lambda v: f"{v:.2f}" if pd.notna(v) else "")
    header = [
        "# Stream model throughput per backbone",
        "",
        f"Input {args.width}x{args.height}, batch {args.batch}, {args.steps} timed steps after one warm-up; "
        f"{args.threads} torch CPU thread(s); {platform.processor() or platform.machine()}, {os.cpu_count()} cores.",
        f"Load average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in load_before)}; "
        f"after: {', '.join(f'{v:.2f}' for v in load_after)} (the machine is shared: CPU figures are lower bounds).",
        "train = forward + backward + SGD step; infer = forward without grad. Peak RSS per case (own subprocess).",
        *(["No GPU on this machine: the CUDA rows are absent."] if "cuda" not in set(table["device"]) else []),
        "",
        f"Command: `{' '.join(['python', 'benchmarks/models.py', *sys.argv[1:]])}`",
        "",
    ]
    (RESULTS / "models.md").write_text("\n".join(header) + _markdown(shown) + "\n")
    print((RESULTS / "models.md").read_text())


def _markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
