"""FusionSeg workflow: raw video to benchmark scores, one rule per step of docs/architecture.md.

    snakemake --cores 2                              # the whole DAG (config.yaml: synthetic, CPU-sized)
    snakemake --cores 2 flow                         # one stage (frames, flow, appearance, bootstrap,
                                                     # motion, fusion, baselines, tsn, segflow, masks, scores, report)
    snakemake --profile profiles/slurm               # every rule as a SLURM job

Rules are thin calls of `fusionseg <step>`; every setting that changes a result is a rule param, so
changing it reruns that step and what depends on it, nothing upstream. Settings that only change how a
step runs (device, log and checkpoint intervals, loader processes) are not params and rerun nothing.
"""

from snakemake.utils import min_version

min_version("9.0")


# A config given with --configfile is the whole config; config.yaml applies only when none is given.
# Snakemake would otherwise merge the given file over config.yaml, and a config that lists only a
# benchmark would silently inherit the default's synthetic datasets and training roles.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


# The config is checked against fusionseg/schema/config.schema.yaml by rules/common.smk (check_config):
# one line naming the file and the key, where snakemake.utils.validate would print the whole schema.


include: "rules/common.smk"
include: "rules/frames.smk"
include: "rules/images.smk"
include: "rules/flow.smk"
include: "rules/appearance.smk"
include: "rules/bootstrap.smk"
include: "rules/motion.smk"
include: "rules/fusion.smk"
include: "rules/baselines.smk"
include: "rules/tsn.smk"
include: "rules/segflow.smk"
include: "rules/masks.smk"
include: "rules/segment.smk"
include: "rules/scores.smk"
include: "rules/report.smk"


# Once every rule exists: resources.rules names only rules that read it.
check_resource_rules()


rule all:
    default_target: True
    input:
        REPORT_HTML,
        EFFECTIVE_CONFIG_FILE,
