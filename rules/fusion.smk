"""Fusion: the 24-parameter layer trained on held-out annotated video, then the joint prediction."""

FUSION_MODEL = f"{OUT}/models/fusion.pt"
FUSION_TRAIN_PAIRS = sequences_of("fusion_train")


rule train_fusion:
    input:
        frames=each(frames_dir, FUSION_TRAIN_PAIRS),
        appearance=each(probs_h5, FUSION_TRAIN_PAIRS, "appearance"),
        motion=each(probs_h5, FUSION_TRAIN_PAIRS, "motion"),
    output:
        FUSION_MODEL,
    params:
        training=result_json("fusion"),
    log:
        f"{OUT}/logs/train_fusion.log",
    benchmark:
        f"{OUT}/benchmarks/train_fusion/train_fusion.tsv"
    threads: RES["threads"]
    resources:
        **job_resources("train_fusion", gpu=True),
        run_options=run_options("fusion"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg train-fusion --frames {input.frames:q} --appearance-probs {input.appearance:q} "
        "--motion-probs {input.motion:q} --out {output:q} --params {params.training:q} "
        "{resources.run_options} --threads {threads} > {log:q} 2>&1"


rule infer_joint:
    input:
        model=model_path("fusion"),
        appearance=probs_h5("appearance", "{dataset}", "{seq}"),
        motion=probs_h5("motion", "{dataset}", "{seq}"),
    output:
        probs_h5("joint", "{dataset}", "{seq}"),
    params:
        batch_size=config["inference"]["batch_size"],
    log:
        log_of("infer_joint", "dataset", "seq"),
    benchmark:
        benchmark_of("infer_joint", "dataset", "seq")
    threads: 1
    resources:
        **job_resources("infer_joint", gpu=True),
        run_options=run_options("inference"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg infer-joint --model {input.model:q} --appearance-probs {input.appearance:q} "
        "--motion-probs {input.motion:q} --out {output:q} --batch-size {params.batch_size:q} {resources.run_options} "
        "--threads {threads} > {log:q} 2>&1"


rule fusion:
    input:
        model_path("fusion"),
        [each(probs_h5, pairs, "joint") for pairs in SCORED_PAIRS.values()],
