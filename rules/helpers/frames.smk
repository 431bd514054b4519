"""Helpers of rules/frames.smk alone (its own include: Snakemake's lint wants functions apart from rules;
the ones several rule files use are in rules/common.smk)."""

def frame_outputs() -> dict:
    """The per-sequence pieces of a DAVIS-layout root that one frames job writes."""
    root = f"{OUT}/frames/{{dataset}}"
    return {
        "frames": directory(f"{root}/JPEGImages/480p/{{seq}}"),
        "masks": directory(f"{root}/Annotations/480p/{{seq}}"),
        "source_masks": directory(f"{root}/Annotations/source/{{seq}}"),
        "boxes": f"{root}/Boxes/{{seq}}.csv",
        "table": f"{root}/Tables/{{seq}}.csv",
    }


def synth_flags(wildcards) -> str:
    spec = config["datasets"][wildcards.dataset]["synthetic"]
    return (
        f"--frames {spec['frames']} --height {spec['height']} --width {spec['width']} "
        f"--max-objects {spec['max_objects']} --seed {spec['seed']}"
        + ("" if config["datasets"][wildcards.dataset]["merge_objects"] else " --no-merge-objects")
    )


def extract_flags(wildcards) -> str:
    """extract-frames options of a dataset; every one changes the frames, so all are params."""
    dataset = config["datasets"][wildcards.dataset]
    flags = [
        f"--layout {dataset['layout']}",
        f"--resolution {shlex.quote(dataset['resolution'])}",
        f"--mask-threshold {dataset['mask_threshold']}",
    ]
    for key, flag in (("max_side", "--max-side"), ("max_frames", "--max-frames")):
        if dataset.get(key) is not None:
            flags.append(f"{flag} {dataset[key]}")
    if not dataset["merge_objects"]:
        flags.append("--no-merge-objects")
    if dataset["boxes_from_masks"]:
        flags.append("--boxes-from-masks")
    return " ".join(flags)


def layout_root(wildcards, output) -> str:
    """The DAVIS-layout root of a frames job, from its own Tables/<seq>.csv output."""
    return str(Path(output.table).parents[1])
