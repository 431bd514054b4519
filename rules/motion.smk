"""Motion stream: trained on the bootstrapped pseudo labels (and, if configured, annotated video)."""

include: "helpers/motion.smk"


MOTION_MODEL = f"{OUT}/models/motion.pt"
ANNOTATED_MOTION_PAIRS = sequences_of("appearance_train") if MOTION_FROM_ANNOTATED else []
USE_SHARDS = "shards" in config["motion_sources"]


rule train_motion:
    input:
        shards=[rules.bootstrap.output.shards] if USE_SHARDS else [],
        manifest=[rules.bootstrap.output.manifest] if USE_SHARDS else [],
        frames=each(frames_dir, ANNOTATED_MOTION_PAIRS),
        flow_rgb=each(flow_rgb_dir, ANNOTATED_MOTION_PAIRS),
    output:
        MOTION_MODEL,
    params:
        manifest=manifest_flag,
        annotated=annotated_flags,
        training=result_json("motion"),
    log:
        f"{OUT}/logs/train_motion.log",
    benchmark:
        f"{OUT}/benchmarks/train_motion/train_motion.tsv"
    threads: RES["threads"]
    resources:
        **job_resources("train_motion", gpu=True),
        run_options=run_options("motion"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg train-motion {params.manifest} {params.annotated} --out {output:q} "
        "--params {params.training:q} {resources.run_options} --threads {threads} > {log:q} 2>&1"


rule infer_motion:
    input:
        model=model_path("motion"),
        flow_rgb=flow_rgb_dir("{dataset}", "{seq}"),
    output:
        probs_h5("motion", "{dataset}", "{seq}"),
    params:
        batch_size=config["inference"]["batch_size"],
    log:
        log_of("infer_motion", "dataset", "seq"),
    benchmark:
        benchmark_of("infer_motion", "dataset", "seq")
    threads: RES["threads"]
    resources:
        **job_resources("infer_motion", gpu=True),
        run_options=run_options("inference"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg infer-motion --model {input.model:q} --flow-rgb {input.flow_rgb:q} --out {output:q} "
        "--batch-size {params.batch_size:q} {resources.run_options} --threads {threads} > {log:q} 2>&1"


rule motion:
    input:
        model_path("motion"),
        each(probs_h5, MOTION_PROB_PAIRS, "motion"),
