"""Inference: probability files, batched stream and joint inference, masks, and their CLI."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from fusionseg.cli import main
from fusionseg.datasets.layout import numbered_images
from fusionseg.errors import InputError
from fusionseg.infer import read_probs, read_probs_attrs, write_probs
from fusionseg.infer.masks import write_masks
from fusionseg.infer.run import infer_joint, infer_stream
from fusionseg.io import OUTPUT_MARKER, file_sha256, read_mask, write_image
from fusionseg.models import FusionModel, StreamModel, save_checkpoint
from fusionseg.models.fusion import log_probabilities
from fusionseg.models.stream import foreground_probability

SIZE = (27, 35)  # odd on purpose: outputs must keep the exact frame size


# Tiny models run fastest on one thread, above all on a machine shared with other jobs.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _images(folder, count=5, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, *SIZE, 3)).astype(np.uint8)
    for i, image in enumerate(images):
        write_image(folder / f"{i:05d}.png", image)
    return images


def _stream_checkpoint(path, stream):
    torch.manual_seed(0)
    model = StreamModel("efficientnet_lite0", "none", stream=stream)
    save_checkpoint(path, model, {"iterations": 1}, 1)
    return model.eval()


def test_probs_round_trip_format(tmp_path):
    probs = np.random.default_rng(0).random((3, *SIZE)).astype(np.float32)
    write_probs(tmp_path / "p.h5", [probs[:2], probs[2:]], 3, SIZE, "motion", "abc")
    with h5py.File(tmp_path / "p.h5") as handle:
        data = handle["prob"]
        assert data.dtype == np.float16 and data.shape == (3, *SIZE) and data.chunks == (1, *SIZE)
    assert read_probs_attrs(tmp_path / "p.h5") == {"method": "motion", "model_sha256": "abc"}
    np.testing.assert_allclose(read_probs(tmp_path / "p.h5"), probs, atol=1e-3)


def test_write_probs_with_too_few_frames_leaves_nothing(tmp_path):
    with pytest.raises(InputError, match="expected 3"):
        write_probs(tmp_path / "p.h5", [np.zeros((2, *SIZE))], 3, SIZE, "motion", "abc")
    assert list(tmp_path.iterdir()) == []


def test_read_probs_names_a_bad_file(tmp_path):
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match=r"bad\.h5"):
        read_probs(tmp_path / "bad.h5")


def test_stream_inference_matches_the_model_frame_by_frame(tmp_path):
    images = _images(tmp_path / "flow")
    model = _stream_checkpoint(tmp_path / "motion.pt", "motion")
    infer_stream(tmp_path / "motion.pt", "motion", numbered_images(tmp_path / "flow"), tmp_path / "m.h5", 2, "cpu")
    probs = read_probs(tmp_path / "m.h5")
    assert probs.shape == (5, *SIZE)
    with torch.no_grad():
        single = foreground_probability(model(torch.from_numpy(images[3]).permute(2, 0, 1).float()[None]))[0]
    np.testing.assert_allclose(probs[3], single.numpy(), atol=1e-3)
    attrs = read_probs_attrs(tmp_path / "m.h5")
    assert attrs == {"method": "motion", "model_sha256": file_sha256(tmp_path / "motion.pt")}


def test_stream_inference_refuses_the_other_stream_and_odd_frames(tmp_path):
    _images(tmp_path / "flow", count=2)
    _stream_checkpoint(tmp_path / "appearance.pt", "appearance")
    with pytest.raises(InputError, match=r"appearance\.pt.*expected a stream \(motion\)"):
        infer_stream(tmp_path / "appearance.pt", "motion", numbered_images(tmp_path / "flow"), tmp_path / "m.h5", 2, "cpu")
    write_image(tmp_path / "flow" / "00002.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(InputError, match=r"00002\.png.*10x10"):
        infer_stream(tmp_path / "appearance.pt", "appearance", numbered_images(tmp_path / "flow"), tmp_path / "a.h5", 2, "cpu")
    assert not (tmp_path / "a.h5").exists()
    write_image(tmp_path / "flow" / "00009.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(InputError, match="without gaps"):
        numbered_images(tmp_path / "flow")


def test_joint_inference_applies_the_fusion(tmp_path):
    rng = np.random.default_rng(0)
    app, mot = rng.random((3, *SIZE)), rng.random((3, *SIZE))
    write_probs(tmp_path / "a.h5", [app], 3, SIZE, "appearance", "x")
    write_probs(tmp_path / "m.h5", [mot], 3, SIZE, "motion", "x")
    model = FusionModel()
    with torch.no_grad():
        model.motion.weight.mul_(3.0)
    save_checkpoint(tmp_path / "fusion.pt", model, {}, 1)
    infer_joint(tmp_path / "fusion.pt", tmp_path / "a.h5", tmp_path / "m.h5", tmp_path / "j.h5", 2, "cpu")
    stored_app = torch.from_numpy(read_probs(tmp_path / "a.h5"))
    stored_mot = torch.from_numpy(read_probs(tmp_path / "m.h5"))
    with torch.no_grad():
        expected = foreground_probability(model(log_probabilities(stored_app), log_probabilities(stored_mot)))
    np.testing.assert_allclose(read_probs(tmp_path / "j.h5"), expected.numpy(), atol=1e-3)
    assert read_probs_attrs(tmp_path / "j.h5")["method"] == "joint"


def test_masks_threshold_the_probabilities(tmp_path):
    probs = np.zeros((2, *SIZE), np.float32)
    probs[0, 5:10, 5:20] = 0.9
    probs[1, :, :3] = 0.6
    write_probs(tmp_path / "p.h5", [probs], 2, SIZE, "joint", "x")
    assert write_masks(tmp_path / "p.h5", tmp_path / "masks", 0.5) == 2
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == [OUTPUT_MARKER, "00000.png", "00001.png"]
    assert np.array_equal(read_mask(tmp_path / "masks" / "00000.png"), probs[0] > 0.5)
    write_masks(tmp_path / "p.h5", tmp_path / "masks", 0.7)
    assert not read_mask(tmp_path / "masks" / "00001.png").any()


def test_cli_inference_and_masks(tmp_path, capsys):
    root = tmp_path / "data"
    _images(root / "JPEGImages" / "480p" / "seq", count=3)
    _stream_checkpoint(tmp_path / "appearance.pt", "appearance")
    frames = str(root / "JPEGImages" / "480p" / "seq")
    args = ["infer-appearance", "--model", str(tmp_path / "appearance.pt"), "--frames", frames, "--out", str(tmp_path / "a.h5")]
    assert main([*args, "--batch-size", "2", "--device", "cpu", "--threads", "1"]) == 0
    assert read_probs(tmp_path / "a.h5").shape == (3, *SIZE)
    assert main(["masks", "--probs", str(tmp_path / "a.h5"), "--out", str(tmp_path / "masks")]) == 0
    assert len(list((tmp_path / "masks").glob("*.png"))) == 3
    assert main(["infer-motion", "--model", str(tmp_path / "appearance.pt"), "--flow-rgb", frames, "--out", str(tmp_path / "m.h5")]) == 2
    assert "appearance.pt" in capsys.readouterr().err
    assert main(["masks", "--probs", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "m2")]) == 2
