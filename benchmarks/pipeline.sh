#!/usr/bin/env bash
# Time a clean run of the embedded default (config.yaml as shipped: the whole DAG on synthetic clips)
# and write benchmarks/results/pipeline.{csv,md}: wall time, jobs, the slowest rules (from Snakemake's
# benchmark files) and how loaded the machine was. Usage: benchmarks/pipeline.sh [CORES]
set -euo pipefail
cd "$(dirname "$0")/.."
cores=${1:-2}
work=$(mktemp -d /tmp/fusionseg-pipeline.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p benchmarks/results

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s.%N)
snakemake --cores "$cores" --directory "$work" --configfile "$PWD/config.yaml" --snakefile "$PWD/Snakefile" \
    --quiet progress > "$work.log" 2>&1 || { tail -n 40 "$work.log"; exit 1; }
wall=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$work" "$wall" "$cores" "$load_before" "$load_after" <<'PY'
import sys
from pathlib import Path

import pandas as pd

work, wall, cores, load_before, load_after = sys.argv[1:]
out_dir = Path(work) / "output" / "synthetic"
rows = []
for tsv in sorted((out_dir / "benchmarks").rglob("*.tsv")):
    rule = tsv.relative_to(out_dir / "benchmarks").parts[0]
    rows.append({"rule": rule, "s": pd.read_csv(tsv, sep="\t")["s"].iloc[0]})
per_rule = (
    pd.DataFrame(rows).groupby("rule")["s"].agg(jobs="count", total_s="sum", max_s="max").reset_index()
    .sort_values("total_s", ascending=False)
)
per_rule.to_csv("benchmarks/results/pipeline.csv", index=False, float_format="%.1f")
summary = pd.read_csv(out_dir / "results" / "summary.csv")
lines = [
    "# Embedded default pipeline: clean run of config.yaml as shipped",
    "",
    f"- wall time: **{wall} s** with `snakemake --cores {cores}` ({int(per_rule['jobs'].sum())} timed jobs;"
    " compute_flow is between-workflow cached, so it has no benchmark file and its time is in the wall time only)",
    f"- machine: {Path('/proc/cpuinfo').read_text().count('processor')} CPU cores;"
    f" load average (1/5/15 min) before {load_before}, after {load_after}"
    " (other work shares the machine when the load before the run is above 0)",
    "- command: `benchmarks/pipeline.sh`",
    "",
    "## Time per rule (sum over its jobs)",
    "",
    per_rule.to_markdown(index=False, floatfmt=".1f"),
    "",
    "## Results of the run (results/summary.csv)",
    "",
    summary.to_markdown(index=False, floatfmt=".3f"),
    "",
]
Path("benchmarks/results/pipeline.md").write_text("\n".join(lines))
print("\n".join(lines))
PY
rm -f "$work.log"
