"""Masks (DAVIS PNGs) at the source's native size from every method's probabilities (Ours-A, Ours-M,
Ours-Joint, and the other systems' methods)."""

# Every method that writes probabilities (the flow baselines write their masks themselves).
PROB_METHODS = [m for m in METHODS if m not in ("flow-th", "flow-sal")]


rule threshold_masks:
    input:
        probs=probs_h5("{method}", "{dataset}", "{seq}"),
        # Its frame table gives the source's native size, at which masks are written and scored.
        frames=frames_dir("{dataset}", "{seq}"),
    output:
        directory(masks_dir("{method}", "{dataset}", "{seq}")),
    wildcard_constraints:
        method=name_pattern(PROB_METHODS),
    params:
        threshold=config["inference"]["threshold"],
    log:
        log_of("threshold_masks", "method", "dataset", "seq"),
    benchmark:
        benchmark_of("threshold_masks", "method", "dataset", "seq")
    threads: 1
    resources:
        **job_resources("threshold_masks"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg masks --probs {input.probs:q} --frames {input.frames:q} --out {output:q} "
        "--threshold {params.threshold:q} > {log:q} 2>&1"


rule masks:
    input:
        [each(masks_dir, method_pairs(m, role), m) for m in PROB_METHODS for role in SCORED_PAIRS],
