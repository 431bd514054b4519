"""Helpers of rules/segment.smk alone (its own include: Snakemake's lint wants functions apart from rules;
the ones several rule files use are in rules/common.smk)."""

def import_sources(wildcards) -> str:
    """import-models' inputs: the bundle, or one flag per checkpoint."""
    return " ".join(f"--{key} {shlex.quote(path)}" for key, path in sorted(config["models"].items()))


def segment_source_flags(wildcards) -> str:
    """Where the overlay videos read native-size frames: the dataset's source (synthetic clips are
    rendered at their native size, so their frame folder is the source)."""
    dataset = config["datasets"][wildcards.dataset]
    if dataset["layout"] == "synthetic":
        return ""
    return f"--source {shlex.quote(dataset['root'])} --layout {dataset['layout']} --resolution {shlex.quote(dataset['resolution'])}"
