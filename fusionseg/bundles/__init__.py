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
checkpoint's architecture against the manifest and the slot it fills, that its weights fit that
architecture, and the input conventions; any problem is one InputError naming the bundle and the
member. A bundle's own SHA-256 is recorded in the provenance of everything made with it. Bundles of
the first format ("fusionseg-bundle-1", without manifest.sha256) are still read, with a warning to
export them again.

Modules: `manifest` (the format's names, the flow convention, the methods, the shipped bundle),
`verify` (reading and checking a bundle, unpacking its checkpoints), `export` (writing one:
`fusionseg export-models`), `importing` (the workflow's `models:` section: `fusionseg import-models`)
and `cli` (those two commands). The shipped bundle, davis-cpu.zip, is package data in this folder
(README.md says how it is made).
"""

from __future__ import annotations

from fusionseg.lazy import lazy_getattr

# Lazy exports: the CLI imports this package to find its `cli` module, and `fusionseg --help` must
# not pay for importing torch.
_EXPORTS = {
    **dict.fromkeys(
        ["Bundle", "FlowConvention", "METHOD_ALIASES", "METHOD_MODELS", "MODEL_NAMES", "canonical_method", "default_bundle",
         "default_bundle_path", "runnable_methods"],
        "fusionseg.bundles.manifest",
    ),
    **dict.fromkeys(["check_checkpoint", "extract_models", "read_bundle", "read_manifest"], "fusionseg.bundles.verify"),
    "export_bundle": "fusionseg.bundles.export",
    **dict.fromkeys(["check_models_config", "import_models"], "fusionseg.bundles.importing"),
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
