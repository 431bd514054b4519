"""Helpers of rules/flow.smk alone (its own include: Snakemake's lint wants functions apart from rules;
the ones several rule files use are in rules/common.smk)."""

def flow_rgb_flags() -> str:
    section = config["flow_rgb"]
    flags = f"--normalization {section['normalization']}"
    if section.get("max_flow") is not None:
        flags += f" --max-flow {section['max_flow']}"
    return flags
