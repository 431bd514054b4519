"""Helpers of rules/report.smk alone (its own include: Snakemake's lint wants functions apart from rules;
the ones several rule files use are in rules/common.smk)."""

def report_input_flags(wildcards, input) -> str:
    """The report's optional inputs as flags: a config without a benchmark (segment only) has no summary,
    scores or overlay strips, and models from elsewhere (no bootstrap) no funnel."""
    flags = [quoted(f"--{name}", input[name]) for name in ("summary", "scores", "funnel", "quality", "segment")]
    flags.append(quoted("--frames-root", [f"{d}={OUT}/frames/{d}" for d in BENCHMARK_DATASETS]))
    if input.flow_rgb:
        flags.append(quoted("--flow-rgb-root", [Path(input.flow_rgb[0]).parents[1]]))
    if input.masks:
        flags.append(quoted("--masks-root", [Path(input.masks[0]).parents[2]]))
    if input.routing:
        flags.append(quoted("--routing-root", [Path(input.routing[0]).parents[1]]))
    return " ".join(flag for flag in flags if flag)


def write_effective_config(path: str, log_path: str) -> None:
    """The config of this run, schema defaults filled, for export-models and validate-config."""
    import yaml

    from fusionseg.io import atomic_file

    header = (
        f"# The config every result below {OUT} was made with (schema defaults filled), written when the\n"
        "# default target completed; how-it-runs settings (devices, resources) are those of the run that\n"
        "# last changed a result. fusionseg export-models records it; fusionseg validate-config reads it.\n"
    )
    with atomic_file(path) as tmp:
        Path(tmp).write_text(header + yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False))
    Path(log_path).write_text(f"{path}: written\n")


def write_roles_csv(path: str, members: list[tuple[str, str, str]], log_path: str) -> None:
    """The role of every sequence, for the report (role, dataset, sequence)."""
    import csv

    from fusionseg.io import atomic_file

    with atomic_file(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["role", "dataset", "sequence"])
        writer.writerows(members)
    Path(log_path).write_text(f"{path}: {len(members)} role assignment(s)\n")
