"""Reading a bundle and checking everything in it before any of it is used (`read_bundle`), and
unpacking its checkpoints byte for byte (`extract_models`)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

from fusionseg.bundles.manifest import (
    BUNDLE_FORMAT,
    CHUNK_BYTES,
    FIRST_FORMAT,
    INPUT_KINDS,
    MANIFEST_CHECKSUM,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    MAX_MEMBER_BYTES,
    MODEL_KINDS,
    MODEL_NAMES,
    OPTIONAL_MODELS,
    Bundle,
    check_flow_convention,
    manifest_flow,
    runnable_methods,
)
from fusionseg.errors import ConfigError, InputError

log = logging.getLogger(__name__)


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
        check_flow_convention(manifest_flow(path, manifest))
    except ConfigError as exc:
        raise InputError(f"{path}: the motion stream's input convention cannot be reproduced: {exc}") from exc


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
