"""Helpers of rules/scores.smk alone (its own include: Snakemake's lint wants functions apart from rules;
the ones several rule files use are in rules/common.smk)."""

def scored_sequences(method: str, dataset: str, role: str) -> list[str]:
    return [seq for d, seq in method_pairs(method, role) if d == dataset]


def score_inputs(role: str) -> dict:
    return {
        "pred": lambda w: [masks_dir(w.method, w.dataset, s) for s in scored_sequences(w.method, w.dataset, role)],
        "gt": lambda w: [frames_dir(w.dataset, s) for s in scored_sequences(w.method, w.dataset, role)],
    }


def score_flags(role: str):
    """The protocol, frame selection and object handling of one (method, dataset) score job."""

    def flags(wildcards) -> str:
        dataset = config["datasets"][wildcards.dataset]
        semi = wildcards.method in SEMI_SUPERVISED_METHODS
        parts = [
            quoted("--sequences", [",".join(scored_sequences(wildcards.method, wildcards.dataset, role))]),
            f"--frames {dataset['score_frames']}",
            f"--protocol {'semi-supervised' if semi else 'unsupervised'}",
        ]
        if semi and not dataset["merge_objects"]:
            parts.append("--per-object")
        return " ".join(parts)

    return flags
