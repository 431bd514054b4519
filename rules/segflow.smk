"""SegFlow (joint segmentation and optical flow, fusionseg/segflow): trained by alternating segmentation
batches (the annotated video of appearance_train) and flow batches (the synthetic clips of flow_train, with
exact flow, and the real pairs of segflow.flow_pairs), then run on the scored sequences (method segflow)
and, with segflow.online, fine-tuned on each sequence's first annotated frame first (segflow-online,
scored semi-supervised). Its flow branch is also a flow method (flow.method: segflow)."""

FLOW_TRAIN_PAIRS = sequences_of("flow_train")
# Online fine-tuning happens at inference: changing its settings must not retrain the offline model.
SEGFLOW_TRAINING = {
    key: value for key, value in result_settings("segflow", config["segflow"]).items() if not key.startswith("online")
}


rule train_segflow:
    input:
        frames=each(frames_dir, APPEARANCE_TRAIN_PAIRS),
        flow_frames=each(frames_dir, FLOW_TRAIN_PAIRS),
    output:
        SEGFLOW_MODEL,
    params:
        # One flag with every folder: argparse keeps only the last of repeated nargs="+" flags.
        flow_pairs=quoted("--flow-pairs", config["segflow"]["flow_pairs"]),
        training=as_json(SEGFLOW_TRAINING),
    log:
        f"{OUT}/logs/train_segflow.log",
    benchmark:
        f"{OUT}/benchmarks/train_segflow/train_segflow.tsv"
    threads: RES["threads"]
    resources:
        **job_resources("train_segflow", gpu=True),
        run_options=run_options("segflow"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg train-segflow --frames {input.frames:q} --flow-frames {input.flow_frames:q} {params.flow_pairs} "
        "--out {output:q} --params {params.training:q} {resources.run_options} --threads {threads} > {log:q} 2>&1"


rule infer_segflow:
    input:
        model=SEGFLOW_MODEL,
        frames=frames_dir("{dataset}", "{seq}"),
    output:
        probs_h5("segflow", "{dataset}", "{seq}"),
    params:
        online="",
    log:
        log_of("infer_segflow", "dataset", "seq"),
    benchmark:
        benchmark_of("infer_segflow", "dataset", "seq")
    threads: RES["threads"]
    resources:
        **job_resources("infer_segflow", gpu=True),
        run_options=run_options("inference"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg infer-segflow --model {input.model:q} --frames {input.frames:q} --out {output:q} {params.online} "
        "{resources.run_options} --threads {threads} > {log:q} 2>&1"


use rule infer_segflow as infer_segflow_online with:
    output:
        probs_h5("segflow-online", "{dataset}", "{seq}"),
    params:
        online=f"--online-iterations {config['segflow']['online_iterations']} --online-lr {config['segflow']['online_lr']}",
    log:
        log_of("infer_segflow_online", "dataset", "seq"),
    benchmark:
        benchmark_of("infer_segflow_online", "dataset", "seq")


rule segflow:
    input:
        SEGFLOW_MODEL,
        [each(probs_h5, scored_pairs_of(m), m) for m in SYSTEM_METHODS["segflow"] if m in METHODS],
