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
        training=as_json(config["fusion"]),
    log:
        f"{OUT}/logs/train_fusion.log",
    benchmark:
        f"{OUT}/benchmarks/train_fusion/train_fusion.tsv"
    threads: RES["threads"]
    resources:
        **job_resources("train_fusion", gpu=True),
    conda:
        CONDA_ENV
    shell:
        "fusionseg train-fusion --frames {input.frames} --appearance-probs {input.appearance} "
        "--motion-probs {input.motion} --out {output} --params {params.training:q} "
        "--threads {threads} > {log} 2>&1"


rule infer_joint:
    input:
        model=model_path("fusion"),
        appearance=probs_h5("appearance", "{dataset}", "{seq}"),
        motion=probs_h5("motion", "{dataset}", "{seq}"),
    output:
        probs_h5("joint", "{dataset}", "{seq}"),
    params:
        batch_size=config["inference"]["batch_size"],
        device=config["inference"]["device"],
    log:
        log_of("infer_joint", "dataset", "seq"),
    benchmark:
        benchmark_of("infer_joint", "dataset", "seq")
    threads: 1
    resources:
        **job_resources("infer_joint", gpu=True),
    conda:
        CONDA_ENV
    shell:
        "fusionseg infer-joint --model {input.model} --appearance-probs {input.appearance} "
        "--motion-probs {input.motion} --out {output} --batch-size {params.batch_size} --device {params.device} "
        "--threads {threads} > {log} 2>&1"


rule fusion:
    input:
        model_path("fusion"),
        [each(probs_h5, pairs, "joint") for pairs in SCORED_PAIRS.values()],
