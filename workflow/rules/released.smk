# Stage "released": the APro release's model-zoo checkpoints (suite `released`), evaluated as published.
#
#   weights/released/<file>.pth              fetch_weights: apro fetch (sha256 recorded on first download)
#   results/released/<exp>/checkpoint.pth    convert_released: apro convert-checkpoint (strict load)
#   results/released/<exp>/metrics.json      evaluate (evaluate.smk), on the converted checkpoint
#
# Nothing is trained: the jobs of a suite with `checkpoints: released` name a converted checkpoint
# (registry Job.checkpoint) instead of a work dir.


rule convert_released:
    """`apro convert-checkpoint`: the release's mmdet 2.25 checkpoint renamed for this suite's model and loaded strictly."""
    input:
        unpack(released_inputs),
    output:
        apro_layout.converted_checkpoint("{suite}", "{experiment}"),
    params:
        apro=APRO,
        config=lambda w: shown_path(registry_job(w).config),
    log:
        apro_layout.log_file("convert", "{suite}", "{experiment}"),
    benchmark:
        apro_layout.benchmark_file("convert", "{suite}", "{experiment}")
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        CONDA_ENV
    shell:
        "{params.apro} convert-checkpoint {params.config} {input.checkpoint} --out {output} > {log} 2>&1"
