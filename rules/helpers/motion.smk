"""Helpers of rules/motion.smk alone (its own include: Snakemake's lint wants functions apart from rules;
the ones several rule files use are in rules/common.smk)."""

def manifest_flag(wildcards, input) -> str:
    return " ".join(quoted("--manifest", [manifest]) for manifest in input.manifest)


def annotated_flags(wildcards, input) -> str:
    """One `--annotated FRAMES FLOW_RGB` per annotated sequence the motion stream also trains on."""
    return " ".join(quoted("--annotated", pair) for pair in zip(input.frames, input.flow_rgb))
