"""Summary table (methods x datasets) and the self-contained HTML report."""

include: "helpers/report.smk"


SUMMARY_CSV = f"{OUT}/results/summary.csv"
REPORT_HTML = f"{OUT}/results/report.html"
VALIDATION_SUMMARY_CSV = f"{OUT}/results/validation/summary.csv"
HAS_VALIDATION = bool(SCORED_PAIRS["validation"])


rule summarize:
    input:
        all_scores("benchmark"),
    output:
        report(SUMMARY_CSV, caption="../report/summary.rst", category="Results"),
    log:
        f"{OUT}/logs/summarize.log",
    benchmark:
        f"{OUT}/benchmarks/summarize/summarize.tsv"
    threads: 1
    resources:
        **job_resources("summarize"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg summarize --scores {input:q} --out {output:q} > {log:q} 2>&1"


use rule summarize as summarize_validation with:
    input:
        all_scores("validation"),
    output:
        VALIDATION_SUMMARY_CSV,
    log:
        f"{OUT}/logs/summarize_validation.log",
    benchmark:
        f"{OUT}/benchmarks/summarize_validation/summarize_validation.tsv"


rule write_roles:
    output:
        f"{OUT}/results/roles.csv",
    params:
        members=[(role, dataset, seq) for role in ROLES for dataset, seq in role_sequences(config, role)],
    log:
        f"{OUT}/logs/write_roles.log",
    benchmark:
        f"{OUT}/benchmarks/write_roles/write_roles.tsv"
    threads: 1
    resources:
        **job_resources("write_roles"),
    run:
        write_roles_csv(output[0], params.members, log[0])


rule render_report:
    input:
        summary=[SUMMARY_CSV] if BENCHMARK_PAIRS else [],
        validation=[VALIDATION_SUMMARY_CSV] if HAS_VALIDATION else [],
        scores=all_scores("benchmark"),
        roles=rules.write_roles.output,
        funnel=[rules.bootstrap.output.funnel] if BOOTSTRAPS else [],
        quality=[rules.bootstrap.output.quality] if BOOTSTRAPS else [],
        segment=each(segment_dir, SEGMENT_PAIRS),
        masks=[each(masks_dir, method_pairs(method), method) for method in METHODS],
        flow_rgb=each(flow_rgb_dir, BENCHMARK_PAIRS),
        routing=each(routing_h5, method_pairs("tsn")) if "tsn" in METHODS else [],
    output:
        report(REPORT_HTML, caption="../report/report.rst", category="Results"),
    params:
        inputs=report_input_flags,
        # Not inputs: Snakemake writes them beside the jobs; every upstream job has finished by now.
        benchmarks=f"{OUT}/benchmarks",
        overlay_frames=config["report"]["overlay_frames"],
        validation=lambda wildcards, input: quoted("--validation-summary", input.validation),
    log:
        f"{OUT}/logs/render_report.log",
    benchmark:
        f"{OUT}/benchmarks/render_report/render_report.tsv"
    threads: 1
    resources:
        **job_resources("render_report"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg report {params.inputs} --roles {input.roles:q} "
        "--benchmarks {params.benchmarks:q} --overlay-frames {params.overlay_frames:q} {params.validation} "
        "--out {output:q} > {log:q} 2>&1"


# Last, after the report: then every result below OUT was made with this config. It is no step's input,
# so writing it reruns nothing. Its param is what changes results (not resources or devices): a change
# rewrites it even where no job reruns (a dataset no role uses). One small file: no cluster job.
rule effective_config:
    localrule: True
    input:
        REPORT_HTML,
    output:
        EFFECTIVE_CONFIG_FILE,
    params:
        results=as_json(result_config(config)),
    log:
        f"{OUT}/logs/effective_config.log",
    benchmark:
        f"{OUT}/benchmarks/effective_config/effective_config.tsv"
    threads: 1
    resources:
        **job_resources("effective_config"),
    run:
        write_effective_config(output[0], log[0])


rule report:
    input:
        REPORT_HTML,
