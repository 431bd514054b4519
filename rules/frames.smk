"""Frames: every sequence of every role as a DAVIS-layout folder (synthetic clips or extracted)."""

include: "helpers/frames.smk"


SYNTHETIC_DATASETS = [n for n, d in config["datasets"].items() if d["layout"] == "synthetic"]
EXTRACTED_DATASETS = [n for n in config["datasets"] if n not in SYNTHETIC_DATASETS]


rule synth_frames:
    output:
        **frame_outputs(),
        flow_gt=directory(f"{OUT}/frames/{{dataset}}/Flow/{{seq}}"),
    wildcard_constraints:
        dataset=name_pattern(SYNTHETIC_DATASETS),
    params:
        # Named in params, not only in wildcards: the between-workflow cache key of compute_flow is built
        # from its upstream jobs' params, and must differ per dataset and sequence.
        dataset="{dataset}",
        sequence="{seq}",
        root=layout_root,
        flags=synth_flags,
    log:
        log_of("synth_frames", "dataset", "seq"),
    benchmark:
        benchmark_of("synth_frames", "dataset", "seq")
    threads: 1
    resources:
        **job_resources("synth_frames"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg synth --out {params.root:q} --sequence {params.sequence:q} {params.flags} > {log:q} 2>&1"


rule extract_frames:
    output:
        **frame_outputs(),
    wildcard_constraints:
        dataset=name_pattern(EXTRACTED_DATASETS),
    params:
        source=lambda wildcards: config["datasets"][wildcards.dataset]["root"],
        dataset="{dataset}",
        sequence="{seq}",
        root=layout_root,
        flags=extract_flags,
    log:
        log_of("extract_frames", "dataset", "seq"),
    benchmark:
        benchmark_of("extract_frames", "dataset", "seq")
    threads: 1
    resources:
        **job_resources("extract_frames"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg extract-frames {params.source:q} --sequence {params.sequence:q} --out {params.root:q} "
        "{params.flags} > {log:q} 2>&1"


rule frames:
    input:
        each(frames_dir, FRAME_PAIRS),
