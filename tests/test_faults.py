"""Faults a hostile but realistic user meets: each gives one clear line and leaves nothing half-written.

Rows of FAULTS are run through `fusionseg.cli.main`: bad input (silently wrong output before: NaN or
out-of-range probabilities, NaN or empty flow, damaged HDF5 chunks, a missing boxes file, tables
without their columns) and weak messages (foreign torch files, config errors). Rows of MACHINE_FAULTS
run `python -m fusionseg` inside a private mount namespace on a full or read-only tmpfs (skipped where
the kernel does not allow one). Signals, a kill while a sequence is published, concurrent extractions
and resumed training on changed data have their own tests below.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from fusionseg.cli import main
from fusionseg.datasets.layout import Sequence
from fusionseg.errors import InputError
from fusionseg.infer.probs import write_probs
from fusionseg.io import atomic_file, file_sha256, load_torch, write_image, write_mask
from fusionseg.models.checkpoint import read_checkpoint
from fusionseg.train.loop import Trainer, resume_path

FRAMES = 6


@dataclass(frozen=True)
class Fault:
    """One fault: the command (with {in} for the shared inputs, {out} for this run's folder), a
    fragment of the one line it must print, its exit status, and globs (below {out}) that must not exist."""

    name: str
    command: str
    message: str
    status: int = 2
    absent: tuple[str, ...] = ()


# ---- shared inputs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Two synthetic clips with flow, flow images and probabilities, and damaged or foreign variants."""
    root = tmp_path_factory.mktemp("inputs")
    for name in ("clip", "other"):
        assert main(["synth", "--out", str(root / "frames"), "--sequence", name, "--frames", str(FRAMES),
                     "--height", "48", "--width", "64"]) == 0  # fmt: skip
        frames = root / "frames" / "JPEGImages" / "480p" / name
        assert main(["compute-flow", "--frames", str(frames), "--out", str(root / "flow" / f"{name}.h5"), "--method", "dis"]) == 0
        assert main(["encode-flow", "--flow", str(root / "flow" / f"{name}.h5"), "--out", str(root / "flow_rgb" / name)]) == 0
        probs = np.random.default_rng(0).uniform(size=(FRAMES, 48, 64)).astype(np.float32)
        write_probs(root / "probs" / f"{name}.h5", [probs], FRAMES, (48, 64), "appearance", "0" * 64)
    _bad_probs(root)
    _bad_flow(root)
    _bad_tables(root)
    _foreign_torch_files(root)
    _weak_video_without_boxes(root)
    _bad_configs(root)
    return root


def _bad_probs(root: Path) -> None:
    probs = np.random.default_rng(1).uniform(size=(FRAMES, 48, 64)).astype(np.float32)
    for kind, value in (("nan", np.nan), ("range", 1.5)):
        values = probs.copy()
        values[3, 10:20, 10:20] = value
        (root / kind).mkdir()
        with h5py.File(root / kind / "clip.h5", "w") as handle:  # named like its sequence, for bootstrap
            handle.create_dataset("prob", data=values.astype(np.float16), chunks=(1, 48, 64))
            handle.attrs.update(method="appearance", model_sha256="0" * 64)
    (root / "damaged").mkdir()
    shutil.copy(root / "probs" / "clip.h5", root / "damaged" / "clip.h5")
    damage_chunk(root / "damaged" / "clip.h5", "prob", 2)


def _bad_flow(root: Path) -> None:
    flow = np.zeros((FRAMES, 48, 64, 2), np.float32)
    flow[2, 5, 5] = np.nan
    with h5py.File(root / "flow" / "nan.h5", "w") as handle:
        handle.create_dataset("flow", data=flow, chunks=(1, 48, 64, 2))
    with h5py.File(root / "flow" / "empty.h5", "w") as handle:
        handle.create_dataset("flow", shape=(0, 48, 64, 2), dtype=np.float32)
    shutil.copy(root / "flow" / "clip.h5", root / "flow" / "damaged.h5")
    damage_chunk(root / "flow" / "damaged.h5", "flow", 1)


def _bad_tables(root: Path) -> None:
    (root / "tables").mkdir()
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(root / "tables" / "foreign.csv", index=False)
    pd.DataFrame({"method": ["Ours-Joint"], "method_id": ["joint"], "synth J": [0.7]}).to_csv(
        root / "tables" / "summary.csv", index=False
    )


def _foreign_torch_files(root: Path) -> None:
    (root / "torch").mkdir()
    torch.save({"conv.weight": torch.zeros(1), "note": _NotATensor()}, root / "torch" / "objects.pt")
    (root / "torch" / "text.pt").write_text("these are not weights\n")


class _NotATensor:
    """A Python object in a weights file: torch.load(weights_only=True) refuses it."""


def _weak_video_without_boxes(root: Path) -> None:
    shutil.copytree(root / "frames", root / "noboxes")
    (root / "noboxes" / "Boxes" / "clip.csv").unlink()


def _bad_configs(root: Path) -> None:
    shipped = Path(__file__).resolve().parents[1] / "config.yaml"
    text = shipped.read_text()
    (root / "typo.yaml").write_text(text.replace("  batch_size: 4       # frame pairs", "  batchsize: 4 # frame pairs"))
    (root / "unknown-sequence.yaml").write_text(text.replace("clip011]", "clip099]"))
    (root / "broken.yaml").write_text("roles: [unclosed\n")


def damage_chunk(path: Path, dataset: str, index: int) -> None:
    """Flip bytes inside one chunk of an HDF5 dataset (its Fletcher-32 checksum no longer matches)."""
    with h5py.File(path, "r") as handle:
        chunk = handle[dataset].id.get_chunk_info(index)
    with open(path, "r+b") as fh:
        fh.seek(chunk.byte_offset + chunk.size // 2)
        data = bytearray(fh.read(8))
        fh.seek(chunk.byte_offset + chunk.size // 2)
        fh.write(bytes(b ^ 0xFF for b in data))


# ---- bad input and weak messages -----------------------------------------------------------------

FRAMES_DIR = "{in}/frames/JPEGImages/480p/clip"
FAULTS = [
    Fault("probabilities with NaN", "masks --probs {in}/nan/clip.h5 --out {out}/m", "nan/clip.h5: probabilities hold NaN", absent=("m",)),
    Fault("probabilities outside [0, 1]", "masks --probs {in}/range/clip.h5 --out {out}/m",
          "range/clip.h5: probabilities outside [0, 1]", absent=("m",)),
    Fault("probabilities with NaN, fusion training", "train-fusion --frames " + "{in}/frames/JPEGImages/480p/clip"
          " --appearance-probs {in}/nan/clip.h5 --motion-probs {in}/probs/clip.h5 --out {out}/f.pt",
          "probabilities hold NaN", absent=("f.pt*",)),
    Fault("probabilities with NaN, bootstrap", "bootstrap --frames {in}/frames/JPEGImages/480p/clip --probs {in}/nan/clip.h5 "
          "--flow-rgb {in}/flow_rgb/clip --out-dir {out}/pseudo", "nan/clip.h5: frame 3 probabilities hold NaN",
          absent=("pseudo/manifest.csv", "pseudo/shards")),
    Fault("damaged probability chunk", "masks --probs {in}/damaged/clip.h5 --out {out}/m", "damaged/clip.h5: damaged probability data",
          absent=("m",)),
    Fault("NaN in a flow frame", "encode-flow --flow {in}/flow/nan.h5 --out {out}/rgb", "nan.h5: flow frame 2 holds NaN", absent=("rgb",)),
    Fault("NaN in a flow frame, Flow-Th", "flow-th --flow {in}/flow/nan.h5 --out {out}/m", "flow frame 2 holds NaN", absent=("m",)),
    Fault("flow file of 0 frames", "encode-flow --flow {in}/flow/empty.h5 --out {out}/rgb", "empty.h5: 'flow' holds 0 frame(s)", absent=("rgb",)),
    Fault("damaged flow chunk", "encode-flow --flow {in}/flow/damaged.h5 --out {out}/rgb", "damaged.h5: damaged flow (frame 1)", absent=("rgb",)),
    Fault("bootstrap without a boxes file", "bootstrap --frames {in}/noboxes/JPEGImages/480p/clip --probs {in}/probs/clip.h5 "
          "--flow-rgb {in}/flow_rgb/clip --out-dir {out}/pseudo", "Boxes/clip.csv: boxes file not found",
          absent=("pseudo/manifest.csv", "pseudo/shards")),
    Fault("scores table without its columns", "summarize --scores {in}/tables/foreign.csv --out {out}/s.csv",
          "foreign.csv: not a scores table (missing column(s)", absent=("s.csv",)),
    Fault("summary without its columns", "report --summary {in}/tables/foreign.csv --out {out}/r.html",
          "foreign.csv: not a summary table", absent=("r.html",)),
    Fault("funnel without its columns", "report --summary {in}/tables/summary.csv --funnel {in}/tables/foreign.csv --out {out}/r.html",
          "foreign.csv: not a bootstrap funnel", absent=("r.html",)),
    Fault("weights file holding Python objects", "train-appearance --frames " + FRAMES_DIR + " --out {out}/a.pt "
          "--params '{{\"weights\": \"{in}/torch/objects.pt\", \"iterations\": 1}}'",
          "objects.pt: not a torch weights file: it holds Python objects", absent=("a.pt",)),
    Fault("checkpoint that is a text file", "infer-appearance --model {in}/torch/text.pt --frames " + FRAMES_DIR + " --out {out}/p.h5",
          "text.pt: not a checkpoint (not written by torch.save", absent=("p.h5",)),
    Fault("config with an unknown key", "validate-config {in}/typo.yaml", "typo.yaml: flow.batchsize: unknown key"),
    Fault("config naming a sequence the dataset lacks", "validate-config {in}/unknown-sequence.yaml",
          "unknown-sequence.yaml: roles.benchmark: dataset 'synth' has no sequence(s) clip099"),
    Fault("config that is not YAML", "validate-config {in}/broken.yaml", "broken.yaml: not valid YAML (line 2, column 1"),
    Fault("--params with an unknown key", "bootstrap --frames " + FRAMES_DIR + " --probs {in}/probs/clip.h5 --flow-rgb "
          "{in}/flow_rgb/clip --out-dir {out}/pseudo --params '{{\"box_iuo\": 0.7}}'", "--params: bootstrap.box_iuo: unknown key",
          absent=("pseudo",)),
    Fault("frames source of no known kind", "extract-frames {in}/tables --out {out}/f", "give --layout", absent=("f",)),
]


def expand(command: str, inputs: Path, out: Path) -> list[str]:
    return shlex.split(command.format(**{"in": inputs, "out": out}))


def check_one_line(stderr: str, command: str, fragment: str) -> None:
    """The last line is the step's one error line, with the fragment; no traceback anywhere."""
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"fusionseg {command}: "), last
    assert fragment in last, last


def check_nothing_left(out: Path, absent: tuple[str, ...]) -> None:
    for pattern in absent:
        assert not list(out.glob(pattern)), f"{pattern} exists"
    assert not [p for p in out.rglob("*.tmp")], "temporary files left"


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_bad_input_gives_one_line_and_no_output(fault: Fault, inputs: Path, tmp_path: Path, capsys) -> None:
    argv = expand(fault.command, inputs, tmp_path)
    assert main(argv) == fault.status
    check_one_line(capsys.readouterr().err, argv[0], fault.message)
    check_nothing_left(tmp_path, fault.absent)


def test_damaged_shard_array_is_named_even_when_its_sha256_is_refreshed(inputs: Path, tmp_path: Path, capsys) -> None:
    frames = str(inputs / "frames" / "JPEGImages" / "480p" / "clip")
    params = json.dumps({"threshold": 0.0, "box_iou": 0.0, "max_fill": 1.0, "min_flow_contrast": 0})
    argv = ["bootstrap", "--frames", frames, "--probs", str(inputs / "probs" / "clip.h5"), "--flow-rgb",
            str(inputs / "flow_rgb" / "clip"), "--out-dir", str(tmp_path / "pseudo"), "--params", params]  # fmt: skip
    assert main(argv) == 0
    manifest = pd.read_csv(tmp_path / "pseudo" / "manifest.csv")
    shard = tmp_path / "pseudo" / manifest["shard"].iloc[0]
    damage_chunk(shard, "samples/000000/flow", 0)
    manifest["shard_sha256"] = file_sha256(shard)
    manifest.to_csv(tmp_path / "pseudo" / "manifest.csv", index=False)
    capsys.readouterr()
    assert main(["verify-shards", str(tmp_path / "pseudo" / "manifest.csv")]) == 2
    check_one_line(capsys.readouterr().err, "verify-shards", "damaged sample 000000 (flow)")


def test_video_file_needs_no_layout(tmp_path: Path) -> None:
    import cv2

    video = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for index in range(4):
        writer.write(np.full((48, 64, 3), 40 * index, np.uint8))
    writer.release()
    assert main(["extract-frames", str(video), "--out", str(tmp_path / "f")]) == 0
    assert len(Sequence(tmp_path / "f", "walk").frame_paths()) == 4


# ---- faults of the machine: full disk, read-only folder --------------------------------------------


@dataclass(frozen=True)
class MachineFault(Fault):
    """A fault whose output folder {out} is a tmpfs: filled up to the last byte, or read-only."""

    mount: str = "full"  # full | read-only


MACHINE_FAULTS = [
    MachineFault("full disk: flow", "compute-flow --frames " + FRAMES_DIR + " --out {out}/clip.h5 --method dis",
                 "clip.h5: cannot write (no space left on device)", absent=("clip.h5",)),
    MachineFault("full disk: checkpoint", "train-fusion --frames " + FRAMES_DIR + " --appearance-probs {in}/probs/clip.h5 "
                 "--motion-probs {in}/probs/clip.h5 --out {out}/fusion.pt --params '{{\"iterations\": 2, \"batch_size\": 1}}'",
                 "cannot write (no space left on device)", absent=("fusion.pt", "fusion.pt.*")),
    MachineFault("full disk: frames", "synth --out {out}/frames --sequence clip --frames 4", "cannot write (no space left on device)",
                 absent=("frames/JPEGImages/480p/clip", "frames/.clip*")),
    MachineFault("full disk: shards", "bootstrap --frames " + FRAMES_DIR + " --probs {in}/probs/clip.h5 --flow-rgb {in}/flow_rgb/clip "
                 "--out-dir {out}/pseudo --params '{{\"threshold\": 0.0, \"box_iou\": 0.0, \"max_fill\": 1.0, \"min_flow_contrast\": 0}}'",
                 "cannot write (no space left on device)", absent=("pseudo/manifest.csv", "pseudo/shards")),
    MachineFault("full disk: masks", "masks --probs {in}/probs/clip.h5 --out {out}/m", "m: cannot write (no space left on device)",
                 absent=("m",)),
    MachineFault("read-only folder: masks", "masks --probs {in}/probs/clip.h5 --out {out}/m", "m: cannot write (read-only file system)",
                 absent=("m",), mount="read-only"),
    MachineFault("read-only folder: flow", "compute-flow --frames " + FRAMES_DIR + " --out {out}/sub/clip.h5 --method dis",
                 "clip.h5: cannot write (read-only file system)", absent=("sub",), mount="read-only"),
]


@pytest.fixture(scope="module")
def private_mounts() -> list[str]:
    """The command prefix that runs a shell in a private mount namespace, where tmpfs can be mounted."""
    prefix = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]
    if shutil.which("unshare") is None:
        pytest.skip("unshare not available: no private tmpfs for the machine faults")
    probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no private tmpfs here ({probe.stderr.decode().strip()})")
    return prefix


MOUNT_SCRIPT = """
mount -t tmpfs -o "$OPTIONS" tmpfs "$PLACE" || exit 99
if [ "$FILL" = 1 ]; then  # to the last byte: big blocks, then small ones for the rest
  dd if=/dev/zero of="$PLACE/.fill" bs=64k 2>/dev/null; dd if=/dev/zero of="$PLACE/.fill2" bs=512 2>/dev/null
fi
"$PYTHON" -m fusionseg "$@" 2> "$RESULT/stderr"
echo $? > "$RESULT/status"
cd "$PLACE" && find . -mindepth 1 ! -name '.fill*' > "$RESULT/left"
"""


@pytest.mark.parametrize("fault", MACHINE_FAULTS, ids=[f.name for f in MACHINE_FAULTS])
def test_machine_fault_gives_one_line_and_removes_temporaries(
    fault: MachineFault, inputs: Path, tmp_path: Path, private_mounts: list[str]
) -> None:
    place, result = tmp_path / "place", tmp_path / "result"
    place.mkdir()
    result.mkdir()
    env = {
        **os.environ, "PYTHON": sys.executable, "PLACE": str(place), "RESULT": str(result),
        "OPTIONS": "size=1m" if fault.mount == "full" else "size=1m,ro", "FILL": "1" if fault.mount == "full" else "0",
    }  # fmt: skip
    argv = expand(fault.command, inputs, place)
    run = subprocess.run([*private_mounts, "sh", "-c", MOUNT_SCRIPT, "sh", *argv], env=env, capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode()
    assert int((result / "status").read_text()) == fault.status
    check_one_line((result / "stderr").read_text(), argv[0], fault.message)
    left = [Path(line) for line in (result / "left").read_text().split()]
    assert not [p for p in left if p.name.endswith(".tmp")], left
    for pattern in fault.absent:
        assert not [p for p in left if p.match(pattern) or p.match(f"{pattern}/*")], (pattern, left)


# ---- signals ---------------------------------------------------------------------------------------


# A suite started in the background (nohup, `cmd &` in a script) hands its children an ignored SIGINT,
# which fusionseg rightly keeps ignoring. These tests stand for a run in a terminal's foreground, so the
# child first takes back Python's own Ctrl-C handler.
IN_THE_FOREGROUND = "import signal, sys\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
RUN_FUSIONSEG = "from fusionseg.cli import main\nsys.exit(main(sys.argv[1:]))\n"  # the end of every patched child


def interrupt_when(argv: list[str], ready: Path, glob: str, signum: int) -> subprocess.CompletedProcess:
    """Run `fusionseg argv` in its own process group and, once a file matching `glob` appears in
    `ready`, send `signum` to the whole group, as a terminal does on Ctrl-C (workers included)."""
    command = [sys.executable, "-c", IN_THE_FOREGROUND + RUN_FUSIONSEG, *argv]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(ready.glob(glob)) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signum)
    _, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(argv, process.returncode, "", stderr)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """A clip whose TV-L1 flow takes long enough to be interrupted."""
    root = tmp_path_factory.mktemp("long")
    assert main(["synth", "--out", str(root), "--sequence", "long", "--frames", "16", "--height", "192", "--width", "256"]) == 0
    return root / "JPEGImages" / "480p" / "long"


@pytest.mark.parametrize(("signum", "status", "says"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signal_during_compute_flow(long_clip: Path, tmp_path: Path, signum: int, status: int, says: str) -> None:
    params = json.dumps({"iterations": 300, "warps": 10})
    argv = ["compute-flow", "--frames", str(long_clip), "--out", str(tmp_path / "long.h5"), "--device", "cpu", "--params", params]
    run = interrupt_when(argv, tmp_path, ".long.h5.*.tmp", signum)
    assert run.returncode == status
    check_one_line(run.stderr, "compute-flow", says)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_ctrl_c_during_training_keeps_only_the_resume_file(inputs: Path, tmp_path: Path) -> None:
    frames = str(inputs / "frames" / "JPEGImages" / "480p" / "clip")
    probs = str(inputs / "probs" / "clip.h5")
    params = json.dumps({"iterations": 100000, "batch_size": 1, "checkpoint_every": 1})
    argv = ["train-fusion", "--frames", frames, "--appearance-probs", probs, "--motion-probs", probs,
            "--out", str(tmp_path / "fusion.pt"), "--params", params, "--device", "cpu"]  # fmt: skip
    run = interrupt_when(argv, tmp_path, "fusion.pt.log.csv", signal.SIGINT)  # written after the resume file
    assert run.returncode == 130
    check_one_line(run.stderr, "train-fusion", "interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fusion.pt.log.csv", "fusion.pt.resume.pt"]


SIGNAL_INSIDE_HDF5_IO = IN_THE_FOREGROUND + """
import fusionseg.io.hdf5 as io

class CtrlCOnThirdWrite:  # a file whose third write gets a Ctrl-C: its handler runs inside HDF5's I/O
    def __init__(self, raw):
        self.raw, self.writes = raw, 0

    def __getattr__(self, name):
        return getattr(self.raw, name)

    def write(self, data):
        self.writes += 1
        if self.writes == 3:
            try:
                signal.getsignal(signal.SIGINT)(signal.SIGINT, sys._getframe())
            except KeyboardInterrupt:
                print("raised inside HDF5's I/O", file=sys.stderr)
        return self.raw.write(data)

sink_init = io._FirstFailure.__init__
io._FirstFailure.__init__ = lambda self, raw: sink_init(self, CtrlCOnThirdWrite(raw))
""" + RUN_FUSIONSEG


def test_ctrl_c_inside_hdf5_io_waits_until_hdf5_returns(inputs: Path, tmp_path: Path) -> None:
    """A KeyboardInterrupt raised into HDF5's I/O can crash the interpreter: it must wait for HDF5 to
    return (the signal is sent again), and is raised at the latest when the file is closed."""
    frames = str(inputs / "frames" / "JPEGImages" / "480p" / "clip")
    argv = ["compute-flow", "--frames", frames, "--out", str(tmp_path / "clip.h5"), "--method", "dis"]
    command = [sys.executable, "-X", "faulthandler", "-c", SIGNAL_INSIDE_HDF5_IO, *argv]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 130, run.stderr[-2000:]
    assert "raised inside HDF5's I/O" not in run.stderr and "Exception ignored" not in run.stderr
    check_one_line(run.stderr, "compute-flow", "interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ---- extract-frames: one atomic publication ----------------------------------------------------------


def davis_source(root: Path, frames: int = 5) -> Path:
    for index in range(frames):
        write_image(root / "JPEGImages" / "480p" / "seq" / f"{index:05d}.jpg", np.full((24, 32, 3), 30 * index, np.uint8))
        mask = np.zeros((24, 32), bool)
        mask[4:12, index : index + 10] = True
        write_mask(root / "Annotations" / "480p" / "seq" / f"{index:05d}.png", mask)
    return root


def extract_with_patched_publish(source: Path, out: Path, patch: str, *options: str) -> subprocess.Popen:
    """extract-frames in a child whose `_replace` (one part of the publication) runs `patch` first."""
    code = (
        "import os, signal, sys, time\n"
        "import fusionseg.datasets.writer as writer\n"
        "original = writer._replace\n"
        "def replace(staged, final):\n"
        f"    {patch}\n"
        "    original(staged, final)\n"
        "writer._replace = replace\n"
    ) + RUN_FUSIONSEG
    argv = ["extract-frames", str(source), "--layout", "davis", "--sequence", "seq", "--out", str(out), *options]
    return subprocess.Popen([sys.executable, "-c", code, *argv], stderr=subprocess.PIPE, text=True)


def consistent(sequence: Sequence) -> bool:
    """Frames, both mask folders, boxes and table all from the same extraction."""
    frames = len(sequence.frame_paths())
    table = sequence.table()
    return (
        len(table) == frames == len(sequence.mask_paths()) == len(list(sequence.source_masks_dir.glob("*.png")))
        and (sequence.boxes()["frame"] < frames).all()
    )


def test_kill_while_publishing_leaves_the_sequence_refused_until_the_next_run(tmp_path: Path, capsys) -> None:
    source = davis_source(tmp_path / "davis")
    out = tmp_path / "out"
    assert main(["extract-frames", str(source), "--layout", "davis", "--sequence", "seq", "--out", str(out)]) == 0
    killer = "if 'Annotations' in str(final): os.kill(os.getpid(), signal.SIGKILL)"
    child = extract_with_patched_publish(source, out, killer, "--max-frames", "3")
    child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL
    sequence = Sequence(out, "seq")
    assert list(out.glob(".seq.*.tmp")), "the killed run's staging folder"
    with pytest.raises(InputError, match="sequence incomplete"):
        sequence.frame_paths()
    frames = str(sequence.frames_dir)
    assert main(["compute-flow", "--frames", frames, "--out", str(tmp_path / "seq.h5"), "--method", "dis"]) == 2
    check_one_line(capsys.readouterr().err, "compute-flow", "sequence incomplete")
    assert main(["extract-frames", str(source), "--layout", "davis", "--sequence", "seq", "--out", str(out), "--max-frames", "3"]) == 0
    assert consistent(sequence) and len(sequence.frame_paths()) == 3
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_concurrent_extractions_publish_one_after_the_other(tmp_path: Path) -> None:
    source = davis_source(tmp_path / "davis")
    out = tmp_path / "out"
    slow = "time.sleep(0.3)"  # widens the window in which two publications could interleave
    children = [extract_with_patched_publish(source, out, slow, *options) for options in ((), ("--max-frames", "2"))]
    for child in children:
        stderr = child.communicate(timeout=120)[1]
        assert child.returncode == 0, stderr
    assert consistent(Sequence(out, "seq"))
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_leftovers_of_dead_writers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    from fusionseg.io.atomic import _HOST

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.h5.{_HOST}-{int(dead.stdout)}.abcd1234.tmp"
    live = tmp_path / f".out.h5.{_HOST}-{os.getpid()}.abcd1234.tmp"
    foreign = tmp_path / ".out.h5.otherhost-1.abcd1234.tmp"
    for path in (stale, live, foreign):
        path.write_text("partial")
    with atomic_file(tmp_path / "out.h5") as tmp:
        tmp.write_text("complete")
    assert not stale.exists() and live.exists() and foreign.exists()
    assert (tmp_path / "out.h5").read_text() == "complete"


@pytest.mark.parametrize(
    ("failing", "blamed"),
    [("out/.f.h5.host-1.abc.tmp", True), ("out", True), ("out/f.h5", True), ("out/inputs.h5", False), ("elsewhere/in.h5", False)],
)
def test_permission_errors_blame_the_output_only_when_they_concern_it(tmp_path: Path, failing: str, blamed: bool) -> None:
    """A forbidden input stays an OSError naming the input; a forbidden output is an OutputError naming it."""
    import errno

    from fusionseg.errors import OutputError
    from fusionseg.io import write_faults_named

    error = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / failing))
    with pytest.raises(OutputError if blamed else PermissionError) as raised, write_faults_named(tmp_path / "out" / "f.h5"):
        raise error
    assert str(raised.value).startswith(f"{tmp_path / 'out' / 'f.h5'}: cannot write") == blamed


# ---- resumed training on changed data ----------------------------------------------------------------


def train_fusion_argv(inputs: Path, clip: str, out: Path) -> list[str]:
    frames = str(inputs / "frames" / "JPEGImages" / "480p" / clip)
    probs = str(inputs / "probs" / f"{clip}.h5")
    params = json.dumps({"iterations": 6, "batch_size": 2, "checkpoint_every": 2})
    return ["train-fusion", "--frames", frames, "--appearance-probs", probs, "--motion-probs", probs,
            "--out", str(out), "--params", params, "--device", "cpu"]  # fmt: skip


def test_resume_after_the_data_changed_starts_again(inputs: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    out = tmp_path / "fusion.pt"
    step = Trainer._step

    def stop_at_iteration_four(self, iteration, *args):
        if iteration == 4:
            raise KeyboardInterrupt
        return step(self, iteration, *args)

    with monkeypatch.context() as patched:
        patched.setattr(Trainer, "_step", stop_at_iteration_four)
        assert main(train_fusion_argv(inputs, "clip", out)) == 130
    assert resume_path(out).is_file()
    assert {"model", "optimizer", "iteration"} <= set(load_torch(resume_path(out), "resume file"))
    assert main(train_fusion_argv(inputs, "other", out)) == 0
    assert "written for other training data" in caplog.text
    assert main(train_fusion_argv(inputs, "other", tmp_path / "clean.pt")) == 0
    resumed, clean = read_checkpoint(out)["model"], read_checkpoint(tmp_path / "clean.pt")["model"]
    assert all(torch.equal(resumed[key], clean[key]) for key in clean)
