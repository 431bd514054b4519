"""Binary masks (DAVIS PNGs) at the source's native size from each stream's probabilities: Ours-A, Ours-M, Ours-Joint."""

STREAMS = ("appearance", "motion", "joint")


rule threshold_masks:
    input:
        probs=probs_h5("{stream}", "{dataset}", "{seq}"),
        # Its frame table gives the source's native size, at which masks are written and scored.
        frames=frames_dir("{dataset}", "{seq}"),
    output:
        directory(masks_dir("{stream}", "{dataset}", "{seq}")),
    wildcard_constraints:
        stream=name_pattern(list(STREAMS)),
    params:
        threshold=config["inference"]["threshold"],
    log:
        log_of("threshold_masks", "stream", "dataset", "seq"),
    benchmark:
        benchmark_of("threshold_masks", "stream", "dataset", "seq")
    threads: 1
    resources:
        **LIGHT,
    conda:
        CONDA_ENV
    shell:
        "python -m fusionseg masks --probs {input.probs} --frames {input.frames} --out {output} "
        "--threshold {params.threshold} > {log} 2>&1"


rule masks:
    input:
        [each(masks_dir, BENCHMARK_PAIRS, stream) for stream in STREAMS],
