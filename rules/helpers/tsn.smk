"""Helpers of rules/tsn.smk alone (its own include: Snakemake's lint wants functions apart from rules;
the ones several rule files use are in rules/common.smk)."""

# TSN's inference settings: params of its inference rules, so changing them never retrains TSN.
TSN_INFERENCE_KEYS = ("top_k", "mem_every")


def tsn_inference_flags() -> str:
    """TSN's inference settings as infer-tsn flags (--top-k, --mem-every)."""
    return " ".join(f"--{key.replace('_', '-')} {config['tsn'][key]}" for key in TSN_INFERENCE_KEYS)


def tsn_training_params(wildcards) -> str:
    """What of the tsn section changes what train-tsn learns; the ablation model is the same with the
    pixel stream alone (tsn.ablation itself only says whether the workflow trains it)."""
    section = result_settings("tsn", config["tsn"])
    section = {key: value for key, value in section.items() if key not in ("ablation", "anchors", *TSN_INFERENCE_KEYS)}
    if wildcards.tsn_model == "tsn-pixel":
        section["streams"] = "pixel"
    return as_json(section)
