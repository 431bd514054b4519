"""What the workflow guarantees a user who trusts it with hostile names, a config of their own and a
second run (README, Reliability), one table per guarantee:

* names: a dataset or sequence name outside the one name rule is refused in one line naming its folder
  or file; a video file's stem is mapped onto the rule; every shell command quotes what it interpolates,
  so nothing in a name or a path runs (the shared run segments `x$(touch PWNED) (1).mp4` below an
  out_dir with a space);
* a config means what it says: a given config inherits nothing from config.yaml, the run records the
  config it used (out_dir/config.effective.yaml), and validate-config and export-models read that;
* reruns: a how-it-runs setting reruns nothing, a result setting reruns exactly its step and below.

The real run is conftest.systems_run (every system, shared with tests/test_workflow_systems.py); the
other checks are validate-config in process or Snakemake dry runs, read from its job table.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shlex
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest
import yaml
from snakemake_support import REPO, dry_run, job_counts, planned_jobs, run_snakemake, write_config
from test_workflow_systems import HOSTILE_SEQUENCE, RUN_OUT, systems_config

from fusionseg.cli import main
from fusionseg.config import EFFECTIVE_CONFIG, RUN_SETTINGS, load_config, load_schema
from fusionseg.datasets.catalog import NAME_PATTERN, list_sequences

# ---- names -------------------------------------------------------------------------------------------

# Training roles on a synthetic clip, so that only the dataset under test (in the benchmark) can fail.
TRAINED_ON_SYNTH = {
    "datasets": {"synth": {"layout": "synthetic", "synthetic": {"sequences": 1}}},
    "roles": {role: [{"dataset": "synth"}] for role in ("appearance_train", "weak_video", "fusion_train")},
    "role_overlap": [["appearance_train", "weak_video"], ["appearance_train", "fusion_train"], ["weak_video", "fusion_train"]],
}


@dataclass(frozen=True)
class NameCase:
    """A dataset made of `folders` (DAVIS sequence folders) or `videos` (empty files: listing reads
    names only), declared as `entry` under `dataset`, in the benchmark with `sequences` if given."""

    name: str
    message: str
    status: int = 2
    folders: tuple[str, ...] = ()
    videos: tuple[str, ...] = ()
    dataset: str = "data"
    entry: dict = field(default_factory=dict)
    sequences: tuple[str, ...] = ()
    listed: tuple[str, ...] = ()  # the dataset's sequence names, when valid


NAME_CASES = [
    NameCase("sequence folder with a command substitution", "480p/x$(touch PWNED): name 'x$(touch PWNED)' is not allowed",
             folders=("bear", "x$(touch PWNED)")),
    NameCase("sequence folder with a space", "480p/my clip: name 'my clip' is not allowed", folders=("my clip",)),
    NameCase("sequence folder with a quote", "480p/it's: name 'it's' is not allowed", folders=("it's",)),
    NameCase("bad folder left out by the dataset's own list", "valid", 0, folders=("bear", "x y"),
             entry={"sequences": ["bear"]}, listed=("bear",)),
    NameCase("dataset name with a space", "datasets: name 'my data' is not allowed", folders=("bear",), dataset="my data"),
    NameCase("role sequence with a semicolon", "roles.benchmark.0.sequences.0: name 'bear;rm' is not allowed",
             folders=("bear",), sequences=("bear;rm",)),
    NameCase("video with spaces and brackets", "valid", 0, videos=("my clip (1).mp4",), listed=("my_clip_1",)),
    NameCase("video with a command substitution", "valid", 0, videos=("x$(touch PWNED).mp4",), listed=("x_touch_PWNED",)),
    NameCase("two videos with one name", "same sequence name 'a_b' as a b.mp4", videos=("a b.mp4", "a_b.mp4")),
    NameCase("video with no usable name", "$$.mp4: no usable sequence name", videos=("$$.mp4",)),
]  # fmt: skip


def name_case_config(case: NameCase, root: Path) -> dict:
    for folder in case.folders:
        (root / "JPEGImages" / "480p" / folder).mkdir(parents=True)
    for video in case.videos:
        root.mkdir(parents=True, exist_ok=True)
        (root / video).write_bytes(b"")
    layout = "video" if case.videos else "davis"
    config = copy.deepcopy(TRAINED_ON_SYNTH)
    config["out_dir"] = "out"
    config["datasets"][case.dataset] = {"layout": layout, "root": str(root), **case.entry}
    benchmark = {"dataset": case.dataset, **({"sequences": list(case.sequences)} if case.sequences else {})}
    config["roles"]["benchmark"] = [benchmark]
    return config


@pytest.mark.parametrize("case", NAME_CASES, ids=[c.name for c in NAME_CASES])
def test_names_follow_one_rule(case: NameCase, tmp_path: Path, capsys) -> None:
    config = name_case_config(case, tmp_path / "data root")
    path = write_config(tmp_path, config)
    status = main(["validate-config", str(path)])
    output = capsys.readouterr()
    lines = (output.out if status == 0 else output.err).strip().splitlines()
    assert status == case.status, output
    assert case.message in lines[0] and (status == 0 or len(lines) == 1), lines
    if case.listed:
        dataset = load_config(path)["datasets"][case.dataset]
        assert list_sequences(case.dataset, dataset) == list(case.listed)
    assert not list(tmp_path.rglob("PWNED"))


def test_schema_wildcards_and_readers_share_the_name_rule() -> None:
    assert load_schema()["$defs"]["name"]["pattern"] == f"^{NAME_PATTERN}$"
    common = (REPO / "rules" / "common.smk").read_text()
    assert "dataset=NAME_PATTERN,\n    seq=NAME_PATTERN," in common


def test_workflow_refuses_a_hostile_folder_in_one_line(tmp_path: Path) -> None:
    case = NAME_CASES[0]
    write_config(tmp_path, name_case_config(case, tmp_path / "data root"))
    with pytest.raises(AssertionError) as failure:
        planned_jobs(tmp_path)
    assert case.message in str(failure.value)
    assert not list(tmp_path.rglob("PWNED"))


# Helpers that build flags out of several words quote each path themselves (shlex.quote, rules/*.smk).
FLAG_STRINGS = {
    "params.sources", "params.flags", "params.manifest", "params.annotated", "params.inputs", "params.validation",
    "params.flow_pairs", "params.online", "params.flow", "params.source", "params.models", "params.joint_tsn",
    "params.inference",
    "resources.run_options", "threads",
}  # fmt: skip


def shell_fields() -> Iterator[tuple[str, str]]:
    """(rule file, field) for every {field} in every shell command of rules/*.smk."""
    for path in sorted((REPO / "rules").glob("*.smk")):
        for block in re.findall(r"^    shell:\n((?:        \".*\"\n?)+)", path.read_text(), re.M):
            command = "".join(re.findall(r'"(.*)"', block))
            for name in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", command):
                yield path.name, name


def test_every_shell_interpolation_is_quoted() -> None:
    fields = list(shell_fields())
    assert len(fields) > 100  # the parser found the commands
    unquoted = [(rule, name) for rule, name in fields if not name.endswith(":q") and name not in FLAG_STRINGS]
    assert not unquoted


def test_hostile_video_and_out_dir_run_safely(systems_run: Path) -> None:
    """The shared run: a video named `x$(touch PWNED) (1).mp4` in a folder with a space, segmented below
    an out_dir with a space; nothing ran but the steps."""
    out = systems_run / RUN_OUT
    segmented = out / "segment" / "clips" / HOSTILE_SEQUENCE
    assert (segmented / "overlay.webm").stat().st_size > 0 and len(list((segmented / "masks").glob("*.png"))) == 5
    record = json.loads((segmented / "segment.json").read_text())
    # The video's own frame rate (test_segment.write_clip: 12; 24 without one): its file was found by that name.
    assert record["name"] == f"clips/{HOSTILE_SEQUENCE}" and record["fps"] == 12.0
    assert not list(systems_run.rglob("PWNED")) and not (REPO / "PWNED").exists()


# ---- a config means what it says ---------------------------------------------------------------------


@contextlib.contextmanager
def edited_config(workdir: Path, edit: Callable[[dict], None]) -> Iterator[dict]:
    """The run's config.yaml edited in place for the block, then restored byte for byte."""
    path = workdir / "config.yaml"
    original = path.read_text()
    config = yaml.safe_load(original)
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        yield config
    finally:
        path.write_text(original)


def setting(section: str, key: str, value) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        config.setdefault(section, {})[key] = value

    return edit


@pytest.fixture(scope="module")
def run_bundle(systems_run: Path, tmp_path_factory) -> Path:
    """The shared run's models exported (export-models runs in the workflow's working directory)."""
    bundle = tmp_path_factory.mktemp("bundle") / "run.zip"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(systems_run)
        assert main(["export-models", "--config", "config.yaml", "--out", str(bundle), "--no-scores"]) == 0
    return bundle


def benchmark_only(**sections) -> dict:
    """A user config that lists a benchmark and nothing else (the flow of the shared run's models)."""
    run = systems_config()
    config = {
        "out_dir": "out",
        "datasets": {"synth": run["datasets"]["synth"]},
        "roles": {"benchmark": [{"dataset": "synth", "sequences": ["clip001"]}]},
        "flow": run["flow"],
    }
    config.update(sections)
    return config


def without_weak_video(**sections) -> dict:
    config = systems_config(**sections)
    del config["roles"]["weak_video"]
    return config


@dataclass(frozen=True)
class ConfigCase:
    """A config (built with the run's bundle) and either the rules its plan has exactly, with some of
    their job counts, or its one error line."""

    name: str
    config: Callable[[Path], dict]
    rules: frozenset[str] = frozenset()
    counts: dict = field(default_factory=dict)
    message: str = ""


CONFIG_CASES = [
    ConfigCase(
        "benchmark only, with models: no default datasets, no training",
        lambda bundle: benchmark_only(models={"bundle": str(bundle)}),
        rules=frozenset({"synth_frames", "compute_flow", "encode_flow", "import_models", "infer_appearance", "infer_motion",
                         "infer_joint", "flow_th", "flow_sal", "saliency", "threshold_masks", "score", "summarize",
                         "write_roles", "render_report", "effective_config", "all"}),
        counts={"synth_frames": 1, "score": 6},  # the benchmark clip; FusionSeg's five methods and Saliency
    ),
    ConfigCase("benchmark only, trained here", lambda bundle: benchmark_only(),
               message="systems: fusionseg trains the appearance stream here, but there is no roles.appearance_train"),
    ConfigCase(
        "tsn and segflow without weak video: no bootstrap",
        lambda bundle: without_weak_video(systems=["tsn", "segflow"]),
        rules=frozenset({"synth_frames", "compute_flow", "encode_flow", "train_tsn", "infer_tsn", "infer_tsn_pixel",
                         "train_segflow", "infer_segflow", "infer_segflow_online", "saliency", "threshold_masks", "score", "summarize",
                         "write_roles", "render_report", "effective_config", "all"}),
        counts={"train_tsn": 2, "train_segflow": 1},
    ),
    ConfigCase("fusionseg on pseudo labels without weak video", lambda bundle: without_weak_video(motion_sources=["shards"]),
               message="systems: fusionseg trains the bootstrap (motion_sources: shards) here, but there is no roles.weak_video"),
]  # fmt: skip


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c.name for c in CONFIG_CASES])
def test_a_config_plans_what_it_says(case: ConfigCase, run_bundle: Path, tmp_path: Path) -> None:
    write_config(tmp_path, case.config(run_bundle))
    if case.message:
        with pytest.raises(AssertionError) as failure:
            planned_jobs(tmp_path)
        assert case.message in str(failure.value)
        return
    jobs = planned_jobs(tmp_path)
    assert set(jobs) == case.rules, jobs
    assert {rule: jobs[rule] for rule in case.counts} == case.counts


def test_the_run_records_its_config(systems_run: Path) -> None:
    effective = systems_run / RUN_OUT / EFFECTIVE_CONFIG
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(systems_run)
        assert load_config(effective) == load_config("config.yaml")


def test_validate_config_reads_the_run(systems_run: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(systems_run)
    assert main(["validate-config", RUN_OUT]) == 0
    assert capsys.readouterr().out.startswith(f"{RUN_OUT}/{EFFECTIVE_CONFIG}: valid")
    assert main(["validate-config", "config.yaml"]) == 0
    assert "its results were made with these settings" in capsys.readouterr().out
    with edited_config(systems_run, setting("fusion", "lr", 0.5)):
        assert main(["validate-config", "config.yaml"]) == 0
    assert "made with other settings at fusion.lr; a run redoes what they change" in capsys.readouterr().out


def test_export_records_the_config_that_trained_the_models(
    systems_run: Path, run_bundle: Path, tmp_path: Path, monkeypatch, caplog
) -> None:
    effective = systems_run / RUN_OUT / EFFECTIVE_CONFIG
    with zipfile.ZipFile(run_bundle) as archive:
        assert archive.read("config.yaml") == effective.read_bytes()
    monkeypatch.chdir(systems_run)
    with edited_config(systems_run, setting("fusion", "lr", 0.5)):
        assert main(["export-models", "--config", "config.yaml", "--out", str(tmp_path / "edited.zip"), "--no-scores"]) == 0
    assert "config.yaml differs from" in caplog.text and "at fusion.lr; the bundle records the latter" in caplog.text
    with zipfile.ZipFile(tmp_path / "edited.zip") as archive:
        assert archive.read("config.yaml") == effective.read_bytes()


def test_export_refuses_models_newer_than_the_recorded_config(systems_run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """Models trained after the run's config was recorded (a run that did not finish) are not exported."""
    effective = systems_run / RUN_OUT / EFFECTIVE_CONFIG
    written = effective.stat()
    monkeypatch.chdir(systems_run)
    os.utime(effective, (written.st_atime, written.st_mtime - 3600))
    try:
        status = main(["export-models", "--config", RUN_OUT, "--out", str(tmp_path / "stale.zip"), "--no-scores"])
    finally:
        os.utime(effective, (written.st_atime, written.st_mtime))
    line = capsys.readouterr().err.strip()
    assert status == 2 and len(line.splitlines()) == 1
    assert f"models/appearance.pt: trained after {RUN_OUT}/{EFFECTIVE_CONFIG} was written" in line
    assert not (tmp_path / "stale.zip").exists()


# ---- rerun only what changed ---------------------------------------------------------------------------

# One new value for every how-it-runs setting (fusionseg.config.RUN_SETTINGS) and for the resources.
HOW_IT_RUNS = {
    "appearance": {"device": "cpu", "loader_workers": 0, "log_every": 3, "checkpoint_every": 7},
    "motion": {"device": "cpu", "loader_workers": 2, "log_every": 3, "checkpoint_every": 7},
    "fusion": {"device": "cpu", "log_every": 3, "checkpoint_every": 7},
    "tsn": {"device": "cpu", "log_every": 3, "checkpoint_every": 7},
    "segflow": {"device": "cpu", "log_every": 3, "checkpoint_every": 7},
    "flow": {"device": "auto", "batch_size": 2},
    "inference": {"device": "cpu"},
    "resources": {"threads": 2, "mem_mb": 2000, "runtime": 20},
}


def test_how_it_runs_settings_rerun_nothing(systems_run: Path) -> None:
    assert {s: set(v) for s, v in HOW_IT_RUNS.items() if s != "resources"} == {s: set(k) for s, k in RUN_SETTINGS.items()}

    def edit(config: dict) -> None:
        for section, values in HOW_IT_RUNS.items():
            config.setdefault(section, {}).update(values)

    with edited_config(systems_run, edit):
        assert planned_jobs(systems_run) == {}
        # ...and the jobs do get them: a forced training job's command carries them.
        forced = run_snakemake(systems_run, "--dry-run", "--printshellcmds", "--forcerun", "train_appearance",
                               targets=(f"{RUN_OUT}/models/appearance.pt",)).stdout  # fmt: skip
    command = shlex.split(forced.split("fusionseg train-appearance", 1)[1].split("\n", 1)[0])
    assert " ".join(command[command.index("--device"):][:8]) == (
        "--device cpu --loader-workers 0 --log-every 3 --checkpoint-every 7"
    )


@dataclass(frozen=True)
class ResultChange:
    """A setting that changes results, and exactly the rules Snakemake then plans."""

    name: str
    edit: Callable[[dict], None]
    rules: frozenset[str]


BELOW_MASKS = frozenset({"threshold_masks", "score", "summarize", "render_report", "effective_config", "all"})
# The segment role shows Ours-Joint+TSN beside Ours-Joint: its sequences follow TSN inference.
TSN_INFERENCE = frozenset({"infer_tsn", "infer_tsn_pixel", "infer_joint_tsn", "segment_sequence"})


def unused_dataset(config: dict) -> None:
    config["datasets"]["spare"] = {"layout": "synthetic", "synthetic": {"sequences": 1}}


RESULT_CHANGES = [
    ResultChange("tsn.top_k reruns TSN inference, not training", setting("tsn", "top_k", 3), TSN_INFERENCE | BELOW_MASKS),
    ResultChange("tsn.mem_every reruns TSN inference, not training", setting("tsn", "mem_every", 2), TSN_INFERENCE | BELOW_MASKS),
    ResultChange("tsn.iterations retrains TSN", setting("tsn", "iterations", 3), {"train_tsn"} | TSN_INFERENCE | BELOW_MASKS),
    ResultChange("segflow.online_lr reruns online inference only", setting("segflow", "online_lr", 0.001),
                 {"infer_segflow_online"} | BELOW_MASKS),
    ResultChange("inference.threshold reruns masks, not inference", setting("inference", "threshold", 0.4),
                 {"segment_sequence"} | BELOW_MASKS),
    ResultChange("a dataset no role uses rewrites the record only", unused_dataset, frozenset({"effective_config", "all"})),
]  # fmt: skip


@pytest.mark.parametrize("change", RESULT_CHANGES, ids=[c.name for c in RESULT_CHANGES])
def test_a_result_setting_reruns_its_step_and_below(change: ResultChange, systems_run: Path) -> None:
    with edited_config(systems_run, change.edit):
        text = dry_run(systems_run)
    assert set(job_counts(text)) == change.rules, text
