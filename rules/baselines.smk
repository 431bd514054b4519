"""The paper's flow-only baselines: Flow-Th (flow magnitude threshold) and Flow-Sal (flow saliency)."""


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
        "fusionseg flow-th --flow {input.flow} --frames {input.frames} --out {output} > {log} 2>&1"


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
        "fusionseg flow-sal --flow-rgb {input.flow_rgb} --frames {input.frames} --out {output} > {log} 2>&1"


rule baselines:
    input:
        [each(masks_dir, pairs, method) for method in ("flow-th", "flow-sal") for pairs in SCORED_PAIRS.values()],
