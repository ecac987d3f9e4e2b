# Stage "evaluate": mask AP / AP50 / AP75 of every trained experiment on the val split.


rule evaluate:
    """`apro evaluate CONFIG WORK_DIR|CHECKPOINT --out results/<suite>/<experiment>/metrics.json` (atomically)."""
    input:
        unpack(evaluate_inputs),
    output:
        apro_layout.metrics_file("{suite}", "{experiment}", "{seed}"),
    params:
        apro=APRO,
        config=lambda w: shown_path(registry_job(w).config),
        checkpoint=lambda w: registry_job(w).checkpoint or registry_job(w).work_dir,
        seed=lambda w: int(w.seed),
    log:
        apro_layout.log_file("evaluate", "{suite}", apro_layout.run_name("{experiment}", "{seed}")),
    benchmark:
        apro_layout.benchmark_file("evaluate", "{suite}", apro_layout.run_name("{experiment}", "{seed}"))
    threads: config["eval_threads"]
    resources:
        mem_mb=resources_of("evaluate")["mem_mb"],
        runtime=resources_of("evaluate")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "{params.apro} evaluate {params.config} {params.checkpoint} --data-root {input.data} --out {output}"
        " --seed {params.seed} --threads {threads} > {log} 2>&1"
