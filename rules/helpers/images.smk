"""Helpers of rules/images.smk alone (its own include: Snakemake's lint wants functions apart from rules;
the ones several rule files use are in rules/common.smk)."""

def extract_images_flags(wildcards) -> str:
    """extract-images options of a dataset: only the keys its layout reads (the CLI rejects the others)."""
    dataset = config["datasets"][wildcards.dataset]
    flags = [f"--layout {dataset['layout']}"]
    if dataset["layout"] == "images":
        flags += [f"--images {shlex.quote(dataset['images'])}", f"--masks {shlex.quote(dataset['masks'])}"]
        flags.append(f"--mask-threshold {dataset['mask_threshold']}")
    keys = {"list": "--list", "void_label": "--void-label", "split": "--split", "sbd_root": "--sbd-root", "max_side": "--max-side"}
    flags += [f"{flag} {shlex.quote(str(dataset[key]))}" for key, flag in keys.items() if dataset.get(key) is not None]
    return " ".join(flags)
