"""Summary table (methods x datasets) and the self-contained HTML report."""

SUMMARY_CSV = f"{OUT}/results/summary.csv"
REPORT_HTML = f"{OUT}/results/report.html"


rule summarize:
    input:
        rules.scores.input,
    output:
        SUMMARY_CSV,
    log:
        f"{OUT}/logs/summarize.log",
    benchmark:
        f"{OUT}/benchmarks/summarize/summarize.tsv"
    threads: 1
    resources:
        **LIGHT,
    conda:
        CONDA_ENV
    shell:
        "python -m fusionseg summarize --scores {input} --out {output} > {log} 2>&1"


rule render_report:
    input:
        summary=SUMMARY_CSV,
        funnel=rules.bootstrap.output.funnel,
    output:
        REPORT_HTML,
    log:
        f"{OUT}/logs/render_report.log",
    benchmark:
        f"{OUT}/benchmarks/render_report/render_report.tsv"
    threads: 1
    resources:
        **LIGHT,
    conda:
        CONDA_ENV
    shell:
        "python -m fusionseg report --summary {input.summary} --out {output} > {log} 2>&1"


rule report:
    input:
        REPORT_HTML,
