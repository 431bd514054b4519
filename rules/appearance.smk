"""Appearance stream: trained on annotated frames, then run on every frame that a later step reads."""

APPEARANCE_MODEL = f"{OUT}/models/appearance.pt"
APPEARANCE_TRAIN_PAIRS = sequences_of("appearance_train")


rule train_appearance:
    input:
        frames=each(frames_dir, APPEARANCE_TRAIN_PAIRS),
        images=[image_manifest(dataset) for dataset in APPEARANCE_IMAGE_DATASETS],
    output:
        APPEARANCE_MODEL,
    params:
        sources=appearance_source_flags,
        training=as_json(config["appearance"]),
    log:
        f"{OUT}/logs/train_appearance.log",
    benchmark:
        f"{OUT}/benchmarks/train_appearance/train_appearance.tsv"
    threads: RES["threads"]
    resources:
        **job_resources("train_appearance", gpu=True),
    conda:
        CONDA_ENV
    shell:
        "fusionseg train-appearance {params.sources} --out {output} --params {params.training:q} "
        "--threads {threads} > {log} 2>&1"


rule infer_appearance:
    input:
        model=model_path("appearance"),
        frames=frames_dir("{dataset}", "{seq}"),
    output:
        probs_h5("appearance", "{dataset}", "{seq}"),
    params:
        batch_size=config["inference"]["batch_size"],
        device=config["inference"]["device"],
    log:
        log_of("infer_appearance", "dataset", "seq"),
    benchmark:
        benchmark_of("infer_appearance", "dataset", "seq")
    threads: RES["threads"]
    resources:
        **job_resources("infer_appearance", gpu=True),
    conda:
        CONDA_ENV
    shell:
        "fusionseg infer-appearance --model {input.model} --frames {input.frames} --out {output} "
        "--batch-size {params.batch_size} --device {params.device} --threads {threads} > {log} 2>&1"


rule appearance:
    input:
        model_path("appearance"),
        each(probs_h5, APPEARANCE_PROB_PAIRS, "appearance"),
