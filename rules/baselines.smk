"""Baselines: the paper's flow-only Flow-Th (flow magnitude threshold) and Flow-Sal (flow saliency),
and Saliency (U²-Netp per frame as a background remover runs it; its masks come from threshold_masks)."""


rule saliency:
    input:
        frames=frames_dir("{dataset}", "{seq}"),
    output:
        probs_h5("saliency", "{dataset}", "{seq}"),
    params:
        batch_size=config["inference"]["batch_size"],
    log:
        log_of("saliency", "dataset", "seq"),
    benchmark:
        benchmark_of("saliency", "dataset", "seq")
    threads: RES["threads"]
    resources:
        **job_resources("saliency", gpu=True),
        run_options=run_options("inference"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg saliency --frames {input.frames:q} --out {output:q} --batch-size {params.batch_size:q} "
        "{resources.run_options} --threads {threads} > {log:q} 2>&1"


rule flow_th:
    input:
        flow=flow_h5("{dataset}", "{seq}"),
        frames=frames_dir("{dataset}", "{seq}"),
    output:
        directory(masks_dir("flow-th", "{dataset}", "{seq}")),
    log:
        log_of("flow_th", "dataset", "seq"),
    benchmark:
        benchmark_of("flow_th", "dataset", "seq")
    threads: 1
    resources:
        **job_resources("flow_th"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg flow-th --flow {input.flow:q} --frames {input.frames:q} --out {output:q} > {log:q} 2>&1"


rule flow_sal:
    input:
        flow_rgb=flow_rgb_dir("{dataset}", "{seq}"),
        frames=frames_dir("{dataset}", "{seq}"),
    output:
        directory(masks_dir("flow-sal", "{dataset}", "{seq}")),
    log:
        log_of("flow_sal", "dataset", "seq"),
    benchmark:
        benchmark_of("flow_sal", "dataset", "seq")
    threads: 1
    resources:
        **job_resources("flow_sal"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg flow-sal --flow-rgb {input.flow_rgb:q} --frames {input.frames:q} --out {output:q} > {log:q} 2>&1"


rule baselines:
    input:
        [each(masks_dir, pairs, method) for method in ("flow-th", "flow-sal", "saliency") for pairs in SCORED_PAIRS.values() if method in METHODS],
