"""Still-image datasets (layouts images, pascal-voc): checked and cached once, for the appearance stream."""

include: "helpers/images.smk"


rule extract_images:
    output:
        manifest=image_manifest("{dataset}"),
        shards=directory(f"{OUT}/images/{{dataset}}/shards"),
    wildcard_constraints:
        dataset=name_pattern(IMAGE_DATASETS),
    params:
        source=lambda wildcards: config["datasets"][wildcards.dataset]["root"],
        out=lambda wildcards, output: parent_dir([output.manifest]),
        flags=extract_images_flags,
    log:
        log_of("extract_images", "dataset"),
    benchmark:
        benchmark_of("extract_images", "dataset")
    threads: 1
    resources:
        **job_resources("extract_images"),
    conda:
        CONDA_ENV
    shell:
        "fusionseg extract-images {params.source:q} --out {params.out:q} {params.flags} > {log:q} 2>&1"


rule images:
    input:
        [image_manifest(dataset) for dataset in APPEARANCE_IMAGE_DATASETS],
