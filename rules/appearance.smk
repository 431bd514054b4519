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
        training=result_json("appearance"),
    log:
        f"{OUT}/logs/train_appearance.log",
    benchmark:
        f"{OUT}/benchmarks/train_appearance/train_appearance.tsv"
    threads: RES["threads"]
    resources:
        **job_resources("train_appearance", gpu=True),
        run_options=run_options("appearance"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg train-appearance {params.sources} --out {output:q} --params {params.training:q} "
        "{resources.run_options} --threads {threads} > {log:q} 2>&1"


rule infer_appearance:
    input:
        model=model_path("appearance"),
        frames=frames_dir("{dataset}", "{seq}"),
    output:
        probs_h5("appearance", "{dataset}", "{seq}"),
    params:
        batch_size=config["inference"]["batch_size"],
    log:
        log_of("infer_appearance", "dataset", "seq"),
    benchmark:
        benchmark_of("infer_appearance", "dataset", "seq")
    threads: RES["threads"]
    resources:
        **job_resources("infer_appearance", gpu=True),
        run_options=run_options("inference"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg infer-appearance --model {input.model:q} --frames {input.frames:q} --out {output:q} "
        "--batch-size {params.batch_size:q} {resources.run_options} --threads {threads} > {log:q} 2>&1"


rule appearance:
    input:
        model_path("appearance"),
        each(probs_h5, APPEARANCE_PROB_PAIRS, "appearance"),
