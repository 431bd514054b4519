"""A model bundle's manifest: the format's names and tables, the flow convention its motion stream
was trained on, the methods it runs, and where the shipped bundle is (fusionseg/bundles/davis-cpu.zip)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fusionseg.errors import ConfigError, InputError

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


def canonical_method(name: str) -> str:
    """A method id; `joint+tsn` (the summary's label Ours-Joint+TSN) is `joint-tsn`."""
    return METHOD_ALIASES.get(name, name)


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


def manifest_flow(path: Path, manifest: dict) -> FlowConvention:
    """The flow convention the manifest records for the motion stream."""
    try:
        entry = manifest["models"]["motion"]["input"]
        return FlowConvention(
            entry["flow"]["method"], dict(entry["flow"]["params"]), entry["flow_rgb"]["normalization"], entry["flow_rgb"]["max_flow"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: {MANIFEST_NAME} does not record the motion stream's flow convention ({exc!r} missing)") from exc


def flow_convention_of(config: dict) -> FlowConvention:
    """The flow images a config makes (defaults filled)."""
    from fusionseg.flow.methods import config_key, method_params

    method = config["flow"]["method"]
    params = method_params(method, config["flow"].get(config_key(method), {}))
    return FlowConvention(method, params, config["flow_rgb"]["normalization"], config["flow_rgb"].get("max_flow"))


def check_flow_convention(flow: FlowConvention) -> None:
    """The flow can be recomputed from frames alone (not SegFlow's: that needs its own network)."""
    from fusionseg.flow.methods import method_params
    from fusionseg.flow.sequence import normalizing_maximum

    if flow.method == "segflow":
        raise ConfigError("flow method segflow needs a SegFlow network, which a bundle does not carry")
    method_params(flow.method, flow.params)
    normalizing_maximum(flow.normalization, flow.max_flow)


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
