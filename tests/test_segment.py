"""Segmenting video without ground truth: `fusionseg segment` end to end, the outputs from probabilities,
bad input, and the workflow's segment role (planned without training or scores, and one tiny real run)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from snakemake_support import dry_run, job_counts, run_snakemake, write_config
from test_bundle import bundle_config, rewrite_bundle, write_training_run

from fusionseg.bundles.export import export_bundle
from fusionseg.cli import main
from fusionseg.datasets.layout import Sequence
from fusionseg.datasets.raw import RawSequence
from fusionseg.datasets.writer import ExtractOptions, write_sequence
from fusionseg.infer.probs import write_probs
from fusionseg.io import file_sha256, read_mask, write_image
from fusionseg.models.u2net import shipped_weights
from fusionseg.report.segmented import shown_outputs
from fusionseg.segment.outputs import SegmentInputs, write_segment_outputs
from fusionseg.datasets.readers import read_video_source
from fusionseg.segment.video import video_fps

SOURCE_SIZE = (96, 72)  # the bundle was trained at max_side 64: the networks see 64x48


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bundle")
    path = folder / "bundle.zip"
    export_bundle(write_training_run(folder), path, models_dir=folder / "run" / "models", scores=False)
    return path


def read_video(path: Path):
    """A video's frames as RGB arrays, decoded as the package reads source videos (datasets.readers)."""
    return (rgb for _, rgb in read_video_source(Path(path), None).frames())


def moving_square(index: int, size: tuple[int, int] = SOURCE_SIZE) -> np.ndarray:
    """A textured frame with a bright square moving right: RGB uint8."""
    width, height = size
    rng = np.random.default_rng(0)
    frame = (rng.random((height, width, 3)) * 90).astype(np.uint8)
    x = 10 + 4 * index
    frame[20:44, x : x + 24] = (230, 200, 40)
    return frame


def write_clip(path: Path, frames: int, fps: float = 12.0, size: tuple[int, int] = SOURCE_SIZE) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for index in range(frames):
        writer.write(cv2.cvtColor(moving_square(index, size), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def segment(*argv: str) -> int:
    return main(["segment", *argv, "--threads", "1", "--device", "cpu"])


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_segment_a_video_file(bundle, tmp_path) -> None:
    """The bundle's default method (joint), the Saliency row beside it, and the streams' own overlays."""
    clip = write_clip(tmp_path / "square.mp4", frames=6)
    out = tmp_path / "out"
    assert segment(str(clip), "--models", str(bundle), "--out", str(out), "--stream-overlays") == 0
    folder = out / "square"
    masks = sorted((folder / "masks").glob("*.png"))
    assert [m.stem for m in masks] == [f"{i:05d}" for i in range(6)]
    assert {read_mask(m).shape for m in masks} == {(SOURCE_SIZE[1], SOURCE_SIZE[0])}
    video = list(read_video(folder / "overlay.webm"))
    assert len(video) == 6 and video[0].shape == (SOURCE_SIZE[1], SOURCE_SIZE[0], 3)
    assert video_fps(folder / "overlay.webm") == pytest.approx(12.0)
    for method in ("appearance", "motion", "saliency"):
        assert len(list((folder / f"masks-{method}").glob("*.png"))) == 6
        assert len(list(read_video(folder / f"overlay-{method}.webm"))) == 6
    record = json.loads((folder / "segment.json").read_text())
    assert record["method"] == "joint" and record["shown"] == ["joint", "saliency", "appearance", "motion"]
    assert set(record["step_seconds"]) == {"frames", "flow", "appearance", "motion", "fusion", "saliency"}
    assert record["models"]["bundle_sha256"] == file_sha256(bundle)
    assert record["model_sha256"]["joint"] == record["models"]["checkpoint_sha256"]["fusion"]
    assert record["model_sha256"]["saliency"] == file_sha256(shipped_weights())
    assert record["working_size"] == [64, 48] and record["source_size"] == list(SOURCE_SIZE)
    assert record["flow"]["method"] == "tvl1" and record["flow_rgb"]["normalization"] == "per_frame"
    assert "square" in (out / "report.html").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "square"]  # no work folder left


def test_segment_an_image_folder_of_odd_size(bundle, tmp_path) -> None:
    folder = tmp_path / "walk"
    for index in range(3):
        write_image(folder / f"img{index + 8}.png", moving_square(index, (75, 45)))  # natural order: 8, 9, 10
    out = tmp_path / "out"
    assert segment(str(folder), "--models", str(bundle), "--out", str(out), "--fps", "5", "--max-side", "40", "--no-saliency") == 0
    assert [read_mask(m).shape for m in sorted((out / "walk" / "masks").glob("*.png"))] == [(45, 75)] * 3
    video = list(read_video(out / "walk" / "overlay.webm"))
    assert len(video) == 3 and video[0].shape == (44, 74, 3)  # the writer codes even sizes
    record = json.loads((out / "walk" / "segment.json").read_text())
    assert record["fps"] == 5 and record["working_size"] == [40, 24]
    assert not (out / "walk" / "masks-saliency").exists() and "saliency" not in record["step_seconds"]


def test_overlay_tints_the_joint_mask_at_the_source_size(tmp_path) -> None:
    """Probabilities at the working size, a square of foreground: masks and overlay at the native size."""
    frames = [moving_square(i) for i in range(3)]
    raw = RawSequence("sq", lambda: ((f"f{i}", f) for i, f in enumerate(frames)))
    sequence = write_sequence(raw, tmp_path / "frames", ExtractOptions(max_side=48))
    probs = np.zeros((3, 36, 48), np.float32)
    probs[:, 10:22, 16:28] = 0.9
    joint = tmp_path / "joint.h5"
    write_probs(joint, [probs], 3, (36, 48), "joint", "0" * 64)
    inputs = SegmentInputs("sq", sequence.frames_dir, "joint", joint, lambda: iter(frames), fps=10.0)
    record = write_segment_outputs(inputs, tmp_path / "out")
    mask = read_mask(tmp_path / "out" / "masks" / "00001.png")
    assert mask.shape == (72, 96) and mask[21:43, 33:55].all() and not mask[:18].any()
    change = list(read_video(tmp_path / "out" / "overlay.webm"))[1].astype(float) - frames[1]
    inside, outside = change[26:38, 38:50].mean(axis=(0, 1)), change[50:70, 70:90].mean(axis=(0, 1))
    assert inside[0] > 30 and inside[0] - inside[2] > 50  # tinted red
    assert np.abs(outside).max() < 5  # untouched but for compression noise
    assert record["frames"] == 3 and record["model_sha256"]["joint"] == "0" * 64


def test_unreadable_video_is_one_line_and_leaves_nothing(bundle, tmp_path, capsys) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    out = tmp_path / "out"
    assert segment(str(bad), "--models", str(bundle), "--out", str(out)) == 2
    line = one_error_line(capsys)
    assert str(bad) in line and "not a readable video" in line
    assert not out.exists()


def test_truncated_video_leaves_no_folder(bundle, tmp_path, capsys) -> None:
    good = write_clip(tmp_path / "good.mp4", frames=4)
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(write_clip(tmp_path / "long.mp4", frames=30).read_bytes()[:-3000])
    out = tmp_path / "out"
    assert segment(str(good), str(truncated), "--models", str(bundle), "--out", str(out), "--no-saliency") == 2
    assert str(truncated) in one_error_line(capsys)
    assert not (out / "cut").exists() and not [p for p in out.glob(".*")]


def test_one_frame_clip_says_what_to_do(bundle, tmp_path, capsys) -> None:
    clip = write_clip(tmp_path / "still.mp4", frames=1)
    assert segment(str(clip), "--models", str(bundle), "--out", str(tmp_path / "out")) == 2
    line = one_error_line(capsys)
    assert str(clip) in line and "only 1 frame" in line and "at least 2 frames" in line
    assert not (tmp_path / "out").exists()


def test_folder_without_images_is_named(bundle, tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no frames here")
    assert segment(str(empty), "--models", str(bundle), "--out", str(tmp_path / "out")) == 2
    assert one_error_line(capsys).endswith(f"{empty}: no images or videos in this folder")


def test_two_inputs_with_one_name_are_refused(bundle, tmp_path, capsys) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_clip(tmp_path / folder / "clip.mp4", 2)
    assert segment(str(tmp_path / "a" / "clip.mp4"), str(tmp_path / "b"), "--models", str(bundle), "--out", str(tmp_path / "o")) == 2
    assert "sequence name 'clip'" in one_error_line(capsys)


# ---- methods -------------------------------------------------------------------------------------

# The steps each method must run, and no others (segment.json's step_seconds); joint+tsn is joint-tsn.
METHOD_STEPS = {
    "saliency": {"frames", "saliency"},
    "appearance": {"frames", "appearance"},
    "motion": {"frames", "flow", "motion"},
    "joint": {"frames", "flow", "appearance", "motion", "fusion"},
    "joint+tsn": {"frames", "flow", "appearance", "motion", "fusion", "tsn"},
}


@pytest.fixture(scope="module")
def tsn_bundle(tmp_path_factory) -> Path:
    """A bundle that runs every method: FusionSeg's three models and TSN (untrained)."""
    folder = tmp_path_factory.mktemp("tsn-bundle")
    path = folder / "bundle.zip"
    export_bundle(write_training_run(folder, tsn=True), path, models_dir=folder / "run" / "models", scores=False)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "square.mp4", frames=4)


@pytest.mark.parametrize("method", METHOD_STEPS)
def test_each_method_runs_only_the_steps_it_needs(tsn_bundle, clip, tmp_path, method) -> None:
    out = tmp_path / "out"
    assert segment(str(clip), "--models", str(tsn_bundle), "--out", str(out), "--method", method, "--no-saliency") == 0
    record = json.loads((out / "square" / "segment.json").read_text())
    assert record["method"] == method.replace("+", "-") and record["shown"] == [record["method"]]
    assert set(record["step_seconds"]) == METHOD_STEPS[method]
    assert ("flow" in record) == ("flow" in METHOD_STEPS[method])  # the flow convention, where flow was made
    assert record["outputs"] == ["masks", "overlay.webm", "segment.json"]
    assert len(list((out / "square" / "masks").glob("*.png"))) == 4


@pytest.fixture(scope="module")
def segmented(tsn_bundle, clip, tmp_path_factory) -> Path:
    """OUT of `fusionseg segment --method joint-tsn --stream-overlays`: five methods shown."""
    out = tmp_path_factory.mktemp("segmented") / "out"
    assert segment(str(clip), "--models", str(tsn_bundle), "--out", str(out), "--method", "joint-tsn", "--stream-overlays") == 0
    return out


def test_joint_tsn_shows_saliency_and_what_it_was_made_from(segmented) -> None:
    out = segmented
    record = json.loads((out / "square" / "segment.json").read_text())
    assert record["shown"] == ["joint-tsn", "saliency", "appearance", "motion", "joint"]
    assert set(record["model_sha256"]) == set(record["shown"])
    assert record["model_sha256"]["joint-tsn"] == record["models"]["checkpoint_sha256"]["tsn"]
    assert isinstance(record["tsn_seed_frame"], int)  # -1: the untrained Ours-Joint found no object to seed from
    for name in ("masks-saliency", "masks-joint", "overlay-saliency.webm", "overlay-joint.webm"):
        assert name in record["outputs"] and (out / "square" / name).exists()
    width, height = record["source_size"]
    for name in ("masks-saliency", "masks-joint"):  # one mask per frame, at the source's size
        masks = sorted((out / "square" / name).glob("*.png"))
        assert len(masks) == record["frames"] and all(read_mask(m).shape == (height, width) for m in masks)
    for name in ("overlay-saliency.webm", "overlay-joint.webm"):
        frames = list(read_video(out / "square" / name))
        assert len(frames) == record["frames"] and frames[0].shape[:2] == (height - height % 2, width - width % 2)


def test_report_plays_every_overlay_and_plots_mask_areas(segmented) -> None:
    """Each overlay a <video> with its WebM inlined (a file browsers play: EBML header, DocType webm,
    VP8), the mask-area plot, and contact frames of the chosen method beside the Saliency row."""
    report = (segmented / "report.html").read_text()
    sources = re.findall(r'<video [^>]*><source src="data:video/webm;base64,([^"]+)" type="video/webm">', report)
    names = ["overlay.webm", "overlay-saliency.webm", "overlay-appearance.webm", "overlay-motion.webm", "overlay-joint.webm"]
    assert len(sources) == len(names) and report.count("<video ") == len(names)
    for name, source in zip(names, sources):
        data = base64.b64decode(source)
        assert data == (segmented / "square" / name).read_bytes()
        assert data[:4] == b"\x1a\x45\xdf\xa3" and b"\x42\x82\x84webm" in data[:64] and b"V_VP8" in data[:400]
    assert len(list(read_video(segmented / "square" / "overlay.webm"))) == 4  # decodes back
    if shutil.which("ffprobe"):
        probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries", "format=format_name:stream=codec_name,nb_read_frames",
                                "-of", "json", str(segmented / "square" / "overlay.webm")], capture_output=True, text=True, check=True)  # fmt: skip
        facts = json.loads(probe.stdout)
        assert facts["format"]["format_name"] == "matroska,webm"
        assert facts["streams"][0]["codec_name"] == "vp8" and facts["streams"][0]["nb_read_frames"] == "4"
    assert 'alt="mask area per frame, square"' in report
    contact = report[report.index('<table class="contact">'):]
    assert contact.index("<th>Ours-Joint+TSN</th>") < contact.index("<th>Saliency</th>")
    assert contact[: contact.index("</table>")].count("<img") == 2 * 4  # 4 frames, two methods each


def test_report_links_videos_above_the_inlining_limit(segmented, monkeypatch) -> None:
    from fusionseg.report import build
    from fusionseg.segment.pipeline import write_report

    monkeypatch.setattr(build, "MAX_EMBEDDED_VIDEO_BYTES", 1000)
    report = write_report(segmented).read_text()
    assert "data:video" not in report
    assert '<source src="square/overlay.webm" type="video/webm">' in report
    assert report.count("(0.0 MB, linked: above the 0.001 MB inlining limit)") == 5


def test_folders_of_older_runs_show_ours_joint_and_their_stream_overlays(tmp_path) -> None:
    """segment.json of a run before methods were recorded: Ours-Joint, stream overlays as .mp4."""
    outputs = ["masks", "masks-appearance", "masks-motion", "overlay-appearance.mp4", "overlay-motion.mp4", "overlay.mp4", "segment.json"]
    assert shown_outputs(tmp_path, {"outputs": outputs}) == {
        "joint": (tmp_path / "masks", tmp_path / "overlay.mp4"),
        "appearance": (tmp_path / "masks-appearance", tmp_path / "overlay-appearance.mp4"),
        "motion": (tmp_path / "masks-motion", tmp_path / "overlay-motion.mp4"),
    }


def test_the_bundle_default_method_runs_unless_told(tsn_bundle, clip, tmp_path) -> None:
    motion_default = rewrite_bundle(tsn_bundle, tmp_path / "motion.zip", edit=lambda manifest: manifest.update(default_method="motion"))
    assert segment(str(clip), "--models", str(motion_default), "--out", str(tmp_path / "out"), "--no-saliency") == 0
    assert json.loads((tmp_path / "out" / "square" / "segment.json").read_text())["method"] == "motion"


def test_a_method_the_bundle_cannot_run_is_refused_in_one_line(bundle, clip, tmp_path, capsys) -> None:
    assert segment(str(clip), "--models", str(bundle), "--out", str(tmp_path / "out"), "--method", "joint+tsn") == 2
    assert one_error_line(capsys) == (
        f"fusionseg segment: error: {bundle}: this bundle cannot run method joint-tsn (it carries no TSN: export one from "
        "a run whose systems have tsn); it runs saliency, appearance, motion, joint"
    )
    assert not (tmp_path / "out").exists()


def test_stream_overlays_need_a_method_made_of_streams(bundle, clip, tmp_path, capsys) -> None:
    assert segment(str(clip), "--models", str(bundle), "--out", str(tmp_path / "out"), "--method", "saliency", "--stream-overlays") == 2
    assert "--stream-overlays: method saliency runs one network" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_segment_outputs_shows_saliency_and_joint_tsn_beside_joint(tmp_path, capsys) -> None:
    """The segment role's last step: Ours-Joint's masks, the Saliency row's and Ours-Joint+TSN's beside
    (frames at their native size, as synthetic clips are; probabilities at half of it)."""
    frames = [moving_square(i) for i in range(3)]
    raw = RawSequence("sq", lambda: ((f"f{i}", f) for i, f in enumerate(frames)))
    sequence = write_sequence(raw, tmp_path / "frames")
    probs = {}
    for index, method in enumerate(("joint", "saliency", "joint-tsn")):
        maps = np.zeros((3, 36, 48), np.float32)
        maps[:, 10:22, 16 + 4 * index : 28 + 4 * index] = 0.9
        probs[method] = tmp_path / f"{method}.h5"
        write_probs(probs[method], [maps], 3, (36, 48), method, str(index) * 64)
    out = tmp_path / "out"
    argv = ["segment-outputs", "--frames", str(sequence.frames_dir), "--joint-probs", str(probs["joint"]),
            "--saliency-probs", str(probs["saliency"]), "--joint-tsn-probs", str(probs["joint-tsn"]), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    record = json.loads((out / "segment.json").read_text())
    assert record["method"] == "joint" and record["shown"] == ["joint", "saliency", "joint-tsn"]
    assert record["model_sha256"] == {"joint": "0" * 64, "saliency": "1" * 64, "joint-tsn": "2" * 64}
    masks = [read_mask(out / folder / "00000.png") for folder in ("masks", "masks-saliency", "masks-joint-tsn")]
    assert masks[0][30, 40] and not masks[0][30, 64] and masks[2][30, 64]  # each method's own square
    assert len(list(read_video(out / "overlay-joint-tsn.webm"))) == 3


# ---- the workflow's segment role ----------------------------------------------------------------


def trained_segment_config(**roles) -> dict:
    """A tiny config that trains its models, with clip002 (and maybe more) in the segment role."""
    from test_workflow import TINY_CONFIG, tiny_config

    config = tiny_config()
    config["datasets"]["synth"]["synthetic"]["sequences"] = 3
    config["roles"] = {**TINY_CONFIG["roles"], "segment": [{"dataset": "synth", "sequences": ["clip002"]}], **roles}
    return config


def planned(plan: str) -> list[tuple[str, str]]:
    """(rule, job description) for every job of a dry run."""
    parts = re.split(r"^(?:local)?rule (\w+):$", plan.split("Job stats:", 1)[1], flags=re.MULTILINE)
    return list(zip(parts[1::2], parts[2::2]))


def test_segment_role_is_never_trained_on_or_scored(tmp_path) -> None:
    write_config(tmp_path, trained_segment_config())
    plan = dry_run(tmp_path)
    jobs = job_counts(plan)
    assert jobs["segment_sequence"] == 1 and jobs["score"] == 6 and jobs["threshold_masks"] == 4  # with the Saliency row
    on_segment_clip = {rule for rule, job in planned(plan) if "clip002" in job}
    assert on_segment_clip == {
        "synth_frames", "compute_flow", "encode_flow", "infer_appearance", "infer_motion", "infer_joint", "saliency",
        "segment_sequence", "render_report",
    }  # fmt: skip


def test_segment_role_shows_ours_joint_tsn_where_tsn_runs(tmp_path) -> None:
    config = trained_segment_config()
    config["systems"] = ["fusionseg", "tsn"]
    write_config(tmp_path, config)
    plan = dry_run(tmp_path)
    on_segment_clip = {rule for rule, job in planned(plan) if "clip002" in job}
    assert {"saliency", "infer_joint_tsn", "segment_sequence"} <= on_segment_clip
    segment_job = next(job for rule, job in planned(plan) if rule == "segment_sequence")
    assert "probs/joint-tsn/synth/clip002.h5" in segment_job and "probs/saliency/synth/clip002.h5" in segment_job


def test_segment_role_shares_no_sequence_unless_allowed(tmp_path) -> None:
    from fusionseg.config import check_config
    from fusionseg.errors import ConfigError

    config = trained_segment_config(segment=[{"dataset": "synth", "sequences": ["clip001"]}])
    with pytest.raises(ConfigError, match="roles benchmark and segment share 1 sequence"):
        check_config(config)
    config["role_overlap"] = [*config["role_overlap"], ["benchmark", "segment"]]
    check_config(config)


def test_still_images_are_refused_in_segment(tmp_path) -> None:
    from fusionseg.config import check_config
    from fusionseg.errors import ConfigError

    for folder in ("images", "masks"):
        (tmp_path / "photos" / folder).mkdir(parents=True)
    config = trained_segment_config(segment=[{"dataset": "photos"}])
    config["datasets"]["photos"] = {"layout": "images", "root": str(tmp_path / "photos")}
    with pytest.raises(ConfigError, match=r"roles\.segment: dataset 'photos' has layout 'images'"):
        check_config(config)


@pytest.mark.slow
def test_segment_role_with_a_bundle_runs(bundle, tmp_path) -> None:
    """A real run: a synthetic clip and a video file segmented with the bundle's models, no benchmark."""
    videos = tmp_path / "videos"
    videos.mkdir()
    write_clip(videos / "square.mp4", frames=4)
    config = bundle_config(bundle)
    config["datasets"]["clips"] = {"layout": "video", "root": str(videos), "max_side": 64}
    config["roles"] = {"segment": [{"dataset": "synth", "sequences": ["clip000"]}, {"dataset": "clips"}]}
    write_config(tmp_path, config)
    run_snakemake(tmp_path, "--cores", "2")
    out = tmp_path / "out"
    square = out / "segment" / "clips" / "square"
    assert [read_mask(m).shape for m in sorted((square / "masks").glob("*.png"))] == [(72, 96)] * 4
    assert len(list(read_video(square / "overlay.webm"))) == 4
    assert len(list(read_video(square / "overlay-saliency.webm"))) == 4
    assert Sequence.from_frames_dir(out / "frames" / "clips" / "JPEGImages" / "480p" / "square").source_size() == SOURCE_SIZE
    record = json.loads((square / "segment.json").read_text())
    assert record["models"]["bundle_sha256"] == file_sha256(bundle) and record["name"] == "clips/square"
    assert len(list((out / "segment" / "synth" / "clip000" / "masks").glob("*.png"))) == 4
    report = (out / "results" / "report.html").read_text()
    assert "Segmented videos" in report and "clips/square" in report and "Summary" not in report
    assert not (out / "models" / "appearance.pt").exists() and not (out / "results" / "scores").exists()
