# Stage "released": the APro release's model-zoo checkpoints (suite `released`), evaluated as published.
#
#   weights/released/<file>.pth              fetch_weights (apro.weights: sha256 recorded on first download)
#   results/released/<exp>/checkpoint.pth    convert_released: apro convert-checkpoint (strict load)
#   results/released/<exp>/metrics.json      evaluate (evaluate.smk), on the converted checkpoint
#
# Nothing is trained: the jobs of a suite with `checkpoints: released` name a converted checkpoint
# (registry Job.checkpoint) instead of a work dir.


def released_inputs(wildcards):
    job = registry_job(wildcards)
    if job.released is None:
        raise WorkflowError(f"{wildcards.suite}/{wildcards.experiment}: not a suite of released checkpoints")
    return {
        "config": [shown_path(p) for p in apro_registry.config_files(job.config)],
        "checkpoint": apro_layout.weights_file(job.released),
    }


rule convert_released:
    """`apro convert-checkpoint`: the release's mmdet 2.25 checkpoint renamed for this suite's model and loaded strictly."""
    input:
        unpack(released_inputs),
    output:
        apro_layout.converted_checkpoint("{suite}", "{experiment}"),
    params:
        config=lambda w: shown_path(registry_job(w).config),
    log:
        apro_layout.log_file("convert", "{suite}", "{experiment}"),
    benchmark:
        apro_layout.benchmark_file("convert", "{suite}", "{experiment}")
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    shell:
        "{APRO} convert-checkpoint {params.config} {input.checkpoint} --out {output} > {log} 2>&1"
