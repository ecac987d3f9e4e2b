# Stage "data": write the synthetic datasets and check every dataset's annotations.
#
#   data/<dataset>/                          apro make-data (synthetic datasets of the registry)
#   results/data/<dataset>/validated.json    apro validate-data (annotation files parse, images exist)
#
# External datasets (VOC, COCO) are prepared by hand under data/<name>/; only
# their validation runs here.

rule make_data:
    """Write a synthetic COCO-format dataset (generated in a hidden folder, renamed into place when complete)."""
    output:
        directory(apro_layout.data_dir("{dataset}")),
    wildcard_constraints:
        dataset="|".join(SYNTHETIC_DATASETS) or "(?!)",
    params:
        apro=APRO,
        num_train=lambda w: dataset_spec(w).num_train,
        num_val=lambda w: dataset_spec(w).num_val,
        image_size=lambda w: dataset_spec(w).image_size,
        seed=lambda w: dataset_spec(w).seed,
        hues=lambda w: "" if dataset_spec(w).class_hue_width is None
        else f" --class-hue-width {dataset_spec(w).class_hue_width}",
    log:
        apro_layout.log_file("make_data", "data", "{dataset}"),
    benchmark:
        apro_layout.benchmark_file("make_data", "data", "{dataset}")
    threads: 1
    resources:
        mem_mb=resources_of("make_data")["mem_mb"],
        runtime=resources_of("make_data")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "{params.apro} make-data --out {output} --num-train {params.num_train} --num-val {params.num_val}"
        " --image-size {params.image_size} --seed {params.seed}{params.hues} --overwrite > {log} 2>&1"


rule validate_data:
    """Check the annotation files (apro.data.coco_io) and that every listed image exists; fails naming the bad file."""
    input:
        apro_layout.data_dir("{dataset}"),
    output:
        apro_layout.validated_marker("{dataset}"),
    log:
        apro_layout.log_file("validate_data", "data", "{dataset}"),
    benchmark:
        apro_layout.benchmark_file("validate_data", "data", "{dataset}")
    params:
        apro=APRO,
    threads: 1
    resources:
        mem_mb=resources_of("make_data")["mem_mb"],
        runtime=resources_of("make_data")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "{params.apro} validate-data --data-root {input} --out {output} > {log} 2>&1"
