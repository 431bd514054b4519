"""Optical flow: raw float flow per sequence (GPU when present), then its Middlebury colour coding."""

FLOW_METHOD = config["flow"]["method"]


rule compute_flow:
    input:
        frames=frames_dir("{dataset}", "{seq}"),
    output:
        flow_h5("{dataset}", "{seq}"),
    params:
        method=FLOW_METHOD,
        # Only the chosen method's own section: tuning another method must not rerun this one.
        options=as_json(config["flow"].get(FLOW_METHOD.replace("-", "_"), {})),
        device=config["flow"]["device"],
        batch_size=config["flow"]["batch_size"],
    log:
        log_of("compute_flow", "dataset", "seq"),
    # Shared between workflows through SNAKEMAKE_OUTPUT_CACHE (--cache). Snakemake refuses a benchmark
    # directive on a cached rule (a result taken from the cache has no timing to report).
    cache: "omit-software"
    threads: RES["threads"]
    resources:
        **HEAVY,
    conda:
        CONDA_ENV
    shell:
        "fusionseg compute-flow --frames {input.frames} --out {output} --method {params.method} "
        "--device {params.device} --batch-size {params.batch_size} --params {params.options:q} > {log} 2>&1"


rule encode_flow:
    input:
        flow_h5("{dataset}", "{seq}"),
    output:
        directory(flow_rgb_dir("{dataset}", "{seq}")),
    params:
        flags=flow_rgb_flags(),
    log:
        log_of("encode_flow", "dataset", "seq"),
    benchmark:
        benchmark_of("encode_flow", "dataset", "seq")
    threads: 1
    resources:
        **LIGHT,
    conda:
        CONDA_ENV
    shell:
        "fusionseg encode-flow --flow {input} --out {output} {params.flags} > {log} 2>&1"


rule flow:
    input:
        each(flow_h5, FLOW_PAIRS),
        each(flow_rgb_dir, FLOW_PAIRS),
