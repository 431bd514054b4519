"""TSN (semi-supervised two-stream network, fusionseg/tsn): trained on the annotated video (and image
masks) of appearance_train, run on the scored sequences from their first annotated mask (methods tsn and,
with tsn.ablation, tsn-pixel), and, with FusionSeg, from Ours-Joint's mask on one frame of its choosing
(method joint-tsn: fully automatic, no ground truth at test time)."""

include: "helpers/tsn.smk"


rule train_tsn:
    input:
        frames=each(frames_dir, APPEARANCE_TRAIN_PAIRS),
        images=[image_manifest(dataset) for dataset in APPEARANCE_IMAGE_DATASETS],
    output:
        f"{OUT}/models/{{tsn_model}}.pt",
    wildcard_constraints:
        tsn_model="tsn|tsn-pixel",
    params:
        sources=appearance_source_flags,
        training=tsn_training_params,
    log:
        f"{OUT}/logs/train_tsn/{{tsn_model}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_tsn/{{tsn_model}}.tsv"
    threads: RES["threads"]
    resources:
        **job_resources("train_tsn", gpu=True),
        run_options=run_options("tsn"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg train-tsn {params.sources} --out {output:q} --params {params.training:q} "
        "{resources.run_options} --threads {threads} > {log:q} 2>&1"


rule infer_tsn:
    input:
        model=f"{OUT}/models/tsn.pt",
        frames=frames_dir("{dataset}", "{seq}"),
    output:
        probs=probs_h5("tsn", "{dataset}", "{seq}"),
        # Where the instance stream takes over (W) and where the pixel stream does: shown in the report.
        routing=routing_h5("{dataset}", "{seq}"),
    params:
        inference=tsn_inference_flags(),
    log:
        log_of("infer_tsn", "dataset", "seq"),
    benchmark:
        benchmark_of("infer_tsn", "dataset", "seq")
    threads: RES["threads"]
    resources:
        **job_resources("infer_tsn", gpu=True),
        run_options=run_options("inference"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg infer-tsn --model {input.model:q} --frames {input.frames:q} --out {output.probs:q} "
        "--routing-out {output.routing:q} {params.inference} {resources.run_options} --threads {threads} > {log:q} 2>&1"


rule infer_tsn_pixel:
    input:
        model=f"{OUT}/models/tsn-pixel.pt",
        frames=frames_dir("{dataset}", "{seq}"),
    output:
        probs_h5("tsn-pixel", "{dataset}", "{seq}"),
    params:
        inference=tsn_inference_flags(),
    log:
        log_of("infer_tsn_pixel", "dataset", "seq"),
    benchmark:
        benchmark_of("infer_tsn_pixel", "dataset", "seq")
    threads: RES["threads"]
    resources:
        **job_resources("infer_tsn_pixel", gpu=True),
        run_options=run_options("inference"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg infer-tsn --model {input.model:q} --frames {input.frames:q} --out {output:q} "
        "{params.inference} {resources.run_options} --threads {threads} > {log:q} 2>&1"


# The seed frame is TSN's choice (--seed-frame auto): the frame whose Ours-Joint mask is most confident
# and agrees best with its neighbours' masks; a fixed first frame would propagate whatever Ours-Joint got
# wrong there through the whole video.
rule infer_joint_tsn:
    input:
        model=f"{OUT}/models/tsn.pt",
        frames=frames_dir("{dataset}", "{seq}"),
        seed=probs_h5("joint", "{dataset}", "{seq}"),
    output:
        probs_h5("joint-tsn", "{dataset}", "{seq}"),
    params:
        inference=tsn_inference_flags(),
        anchors=config["tsn"]["anchors"],
    log:
        log_of("infer_joint_tsn", "dataset", "seq"),
    benchmark:
        benchmark_of("infer_joint_tsn", "dataset", "seq")
    threads: RES["threads"]
    resources:
        **job_resources("infer_joint_tsn", gpu=True),
        run_options=run_options("inference"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg infer-tsn --model {input.model:q} --frames {input.frames:q} --seed-probs {input.seed:q} "
        "--seed-frame auto --anchors {params.anchors:q} --out {output:q} {params.inference} {resources.run_options} "
        "--threads {threads} > {log:q} 2>&1"


rule tsn:
    input:
        [each(probs_h5, scored_pairs_of(m), m) for m in SYSTEM_METHODS["tsn"] if m in METHODS],
