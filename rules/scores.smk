"""Scores: J and F per frame and per sequence for every method on every scored dataset, against the
ground truth at its native size (Annotations/source of the frame folders). The benchmark is scored
into results/scores, the validation split (settings are chosen there) into results/validation/scores.
Semi-supervised methods are scored with that protocol, per object where a dataset keeps object ids."""

include: "helpers/scores.smk"


rule score:
    input:
        **score_inputs("benchmark"),
    output:
        sequences=scores_csv("{method}", "{dataset}"),
        frames=f"{OUT}/results/scores/{{method}}/{{dataset}}.frames.csv",
    wildcard_constraints:
        method=name_pattern(METHODS),
    params:
        pred_root=lambda wildcards, input: parent_dir(input.pred),
        gt_root=lambda wildcards, input: str(Path(input.gt[0]).parents[2]),
        flags=score_flags("benchmark"),
    log:
        log_of("score", "method", "dataset"),
    benchmark:
        benchmark_of("score", "method", "dataset")
    threads: 1
    resources:
        **job_resources("score"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg score --pred {params.pred_root:q} --gt {params.gt_root:q} {params.flags} "
        "--gt-resolution source --method {wildcards.method:q} --dataset {wildcards.dataset:q} "
        "--out {output.sequences:q} > {log:q} 2>&1"


use rule score as score_validation with:
    input:
        **score_inputs("validation"),
    output:
        sequences=scores_csv("{method}", "{dataset}", "validation"),
        frames=f"{OUT}/results/validation/scores/{{method}}/{{dataset}}.frames.csv",
    params:
        pred_root=lambda wildcards, input: parent_dir(input.pred),
        gt_root=lambda wildcards, input: str(Path(input.gt[0]).parents[2]),
        flags=score_flags("validation"),
    log:
        log_of("score_validation", "method", "dataset"),
    benchmark:
        benchmark_of("score_validation", "method", "dataset")


rule scores:
    input:
        all_scores("benchmark"),
        all_scores("validation"),
