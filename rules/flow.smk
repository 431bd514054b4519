"""Optical flow: raw float flow per sequence (GPU when present), then its Middlebury colour coding."""

include: "helpers/flow.smk"


FLOW_METHOD = config["flow"]["method"]
FLOW_OPTIONS = dict(config["flow"].get(FLOW_METHOD.replace("-", "_"), {}))
# flow.method segflow without a model of its own: the flow branch of the SegFlow trained here.
FLOW_MODEL = [SEGFLOW_MODEL] if FLOW_METHOD == "segflow" and not FLOW_OPTIONS.get("model") else []
if FLOW_MODEL:
    FLOW_OPTIONS["model"] = SEGFLOW_MODEL


rule compute_flow:
    input:
        frames=frames_dir("{dataset}", "{seq}"),
        model=FLOW_MODEL,
    output:
        flow_h5("{dataset}", "{seq}"),
    params:
        method=FLOW_METHOD,
        # Only the chosen method's own section: tuning another method must not rerun this one.
        options=as_json(FLOW_OPTIONS),
    log:
        log_of("compute_flow", "dataset", "seq"),
    # Shared between workflows through SNAKEMAKE_OUTPUT_CACHE (--cache). Snakemake refuses a benchmark
    # directive on a cached rule (a result taken from the cache has no timing to report).
    cache: "omit-software"
    threads: RES["threads"]
    resources:
        **job_resources("compute_flow", gpu=True),
        run_options=run_options("flow"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg compute-flow --frames {input.frames:q} --out {output:q} --method {params.method:q} "
        "{resources.run_options} --params {params.options:q} > {log:q} 2>&1"


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
        **job_resources("encode_flow"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg encode-flow --flow {input:q} --out {output:q} {params.flags} > {log:q} 2>&1"


rule flow:
    input:
        each(flow_h5, FLOW_PAIRS),
        each(flow_rgb_dir, FLOW_PAIRS),
