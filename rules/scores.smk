"""Scores: J and F per frame and per sequence for every method on every benchmark dataset, against the
ground truth at its native size (Annotations/source of the frame folders)."""


rule score:
    input:
        pred=lambda wildcards: [
            masks_dir(wildcards.method, wildcards.dataset, s) for s in benchmark_sequences(wildcards.dataset)
        ],
        gt=lambda wildcards: [frames_dir(wildcards.dataset, s) for s in benchmark_sequences(wildcards.dataset)],
    output:
        sequences=scores_csv("{method}", "{dataset}"),
        frames=f"{OUT}/results/scores/{{method}}/{{dataset}}.frames.csv",
    wildcard_constraints:
        method=name_pattern(list(METHODS)),
    params:
        pred_root=lambda wildcards, input: parent_dir(input.pred),
        gt_root=lambda wildcards, input: str(Path(input.gt[0]).parents[2]),
        sequences=lambda wildcards: ",".join(benchmark_sequences(wildcards.dataset)),
        frames=lambda wildcards: config["datasets"][wildcards.dataset]["score_frames"],
    log:
        log_of("score", "method", "dataset"),
    benchmark:
        benchmark_of("score", "method", "dataset")
    threads: 1
    resources:
        **LIGHT,
    conda:
        CONDA_ENV
    shell:
        "python -m fusionseg score --pred {params.pred_root} --gt {params.gt_root} --sequences {params.sequences} "
        "--frames {params.frames} --gt-resolution source --method {wildcards.method} --dataset {wildcards.dataset} "
        "--out {output.sequences} > {log} 2>&1"


rule scores:
    input:
        [scores_csv(method, dataset) for method in METHODS for dataset in BENCHMARK_DATASETS],
