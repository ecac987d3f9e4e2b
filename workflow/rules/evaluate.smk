# Stage "evaluate": mask AP / AP50 / AP75 of every trained experiment on the val split.


def evaluate_inputs(wildcards):
    job = registry_job(wildcards)
    return {
        "config": [shown_path(p) for p in apro_registry.config_files(job.config)],
        "data": job.data_root,
        "validated": apro_layout.validated_marker(job.dataset.name),
        # a trained work dir, or (suite of released checkpoints) the converted checkpoint
        "trained": job.checkpoint or job.done,
    }


rule evaluate:
    """`apro evaluate CONFIG WORK_DIR|CHECKPOINT --out results/<suite>/<experiment>/metrics.json` (atomically)."""
    input:
        unpack(evaluate_inputs),
    output:
        apro_layout.metrics_file("{suite}", "{experiment}"),
    params:
        config=lambda w: shown_path(registry_job(w).config),
        checkpoint=lambda w: registry_job(w).checkpoint or registry_job(w).work_dir,
        seed=config["seed"],
    log:
        apro_layout.log_file("evaluate", "{suite}", "{experiment}"),
    benchmark:
        apro_layout.benchmark_file("evaluate", "{suite}", "{experiment}")
    threads: config["eval_threads"]
    resources:
        mem_mb=resources_of("evaluate")["mem_mb"],
        runtime=resources_of("evaluate")["runtime"],
    shell:
        "{APRO} evaluate {params.config} {params.checkpoint} --data-root {input.data} --out {output}"
        " --seed {params.seed} --threads {threads} > {log} 2>&1"
