"""Segment role: video without ground truth through frames, flow, both streams and the fusion, into
segment/<dataset>/<seq>/ (Ours-Joint's masks at the source's size, overlay.webm, segment.json; beside
them the Saliency row's and, with TSN, Ours-Joint+TSN's masks and overlays); never scored.
Models from elsewhere (`models:` a bundle, or three checkpoints) are checked and unpacked here, and no
training rule is planned."""

include: "helpers/segment.smk"


SEGMENT_PAIRS = sequences_of("segment")
IMPORTED_PROVENANCE = f"{OUT}/models/imported/provenance.json"


rule import_models:
    input:
        list(config["models"].values()),
    output:
        appearance=f"{OUT}/models/imported/appearance.pt",
        motion=f"{OUT}/models/imported/motion.pt",
        fusion=f"{OUT}/models/imported/fusion.pt",
        provenance=IMPORTED_PROVENANCE,
    params:
        sources=import_sources,
        out_dir=lambda wildcards, output: parent_dir([output.provenance]),
        # The flow images inference will make; a bundle's motion stream must have been trained on them.
        flow=f"--flow-method {config['flow']['method']} --normalization {config['flow_rgb']['normalization']}"
        + (f" --max-flow {config['flow_rgb']['max_flow']}" if config["flow_rgb"].get("max_flow") is not None else ""),
    log:
        f"{OUT}/logs/import_models.log",
    benchmark:
        f"{OUT}/benchmarks/import_models/import_models.tsv"
    threads: 1
    resources:
        **job_resources("import_models"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg import-models {params.sources} --out-dir {params.out_dir:q} {params.flow} > {log:q} 2>&1"


rule segment_sequence:
    input:
        frames=frames_dir("{dataset}", "{seq}"),
        flow=flow_h5("{dataset}", "{seq}"),
        joint=probs_h5("joint", "{dataset}", "{seq}"),
        appearance=probs_h5("appearance", "{dataset}", "{seq}"),
        motion=probs_h5("motion", "{dataset}", "{seq}"),
        saliency=probs_h5("saliency", "{dataset}", "{seq}"),
        joint_tsn=[probs_h5("joint-tsn", "{dataset}", "{seq}")] if "joint-tsn" in METHODS else [],
        models=[] if TRAINED_HERE else [IMPORTED_PROVENANCE],
    output:
        directory(segment_dir("{dataset}", "{seq}")),
    params:
        source=segment_source_flags,
        models=lambda wildcards, input: quoted("--models-provenance", input.models),
        joint_tsn=lambda wildcards, input: quoted("--joint-tsn-probs", input.joint_tsn),
        threshold=config["inference"]["threshold"],
    log:
        log_of("segment_sequence", "dataset", "seq"),
    benchmark:
        benchmark_of("segment_sequence", "dataset", "seq")
    threads: 1
    resources:
        **job_resources("segment_sequence"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg segment-outputs --frames {input.frames:q} --flow {input.flow:q} --joint-probs {input.joint:q} "
        "--appearance-probs {input.appearance:q} --motion-probs {input.motion:q} --saliency-probs {input.saliency:q} "
        "{params.joint_tsn} {params.source} {params.models} "
        "--name {wildcards.dataset:q}/{wildcards.seq:q} --threshold {params.threshold:q} --out {output:q} > {log:q} 2>&1"


rule segment:
    input:
        each(segment_dir, SEGMENT_PAIRS),
