"""Bootstrapping: weakly labelled video (boxes) + appearance probs + flow -> motion pseudo labels."""

WEAK_PAIRS = sequences_of("weak_video")
PSEUDO = f"{OUT}/pseudo"


rule bootstrap:
    input:
        frames=each(frames_dir, WEAK_PAIRS),
        probs=each(probs_h5, WEAK_PAIRS, "appearance"),
        flow_rgb=each(flow_rgb_dir, WEAK_PAIRS),
    output:
        # As many shards as the kept samples fill: a folder, listed (with checksums) by the manifest.
        shards=directory(f"{PSEUDO}/shards"),
        manifest=f"{PSEUDO}/manifest.csv",
        funnel=f"{PSEUDO}/funnel.csv",
        quality=f"{PSEUDO}/quality.csv",
    params:
        out_dir=lambda wildcards, output: str(Path(output.manifest).parent),
        pruning=as_json(config["bootstrap"]),
    log:
        f"{OUT}/logs/bootstrap.log",
    benchmark:
        f"{OUT}/benchmarks/bootstrap/bootstrap.tsv"
    threads: 1
    resources:
        **job_resources("bootstrap"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg bootstrap --frames {input.frames:q} --probs {input.probs:q} --flow-rgb {input.flow_rgb:q} "
        "--out-dir {params.out_dir:q} --params {params.pruning:q} > {log:q} 2>&1"
