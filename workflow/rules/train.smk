# Stage "train": one training per (suite, experiment) of the registry.
#
# The only declared output is the completion marker done.json, which
# `apro train` writes atomically after the last iteration. The work dir around
# it (checkpoints, mmengine logs) is deliberately not an output: Snakemake
# never deletes it, so a training that was killed or failed resumes from its
# last checkpoint when the workflow runs again ("Auto resumed from the latest
# checkpoint" in the log). Snakemake empties the job's log before each attempt;
# mmengine's own log of every attempt stays in the work dir (<timestamp>/).


rule train:
    """Train (or resume) one experiment: `apro train CONFIG --work-dir results/<suite>/<experiment>/train ...`."""
    input:
        unpack(train_inputs),
    output:
        done=apro_layout.done_file("{suite}", "{experiment}", "{seed}"),
    params:
        apro=APRO,
        config=lambda w: shown_path(registry_job(w).config),
        work_dir=lambda w: registry_job(w).work_dir,
        max_iters=max_iters_arg,
        init=init_arg,
        seed=lambda w: int(w.seed),
    log:
        apro_layout.log_file("train", "{suite}", apro_layout.run_name("{experiment}", "{seed}")),
    benchmark:
        apro_layout.benchmark_file("train", "{suite}", apro_layout.run_name("{experiment}", "{seed}"))
    threads: train_threads
    resources:
        mem_mb=resources_of("train")["mem_mb"],
        runtime=resources_of("train")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "{params.apro} train {params.config} --work-dir {params.work_dir} --data-root {input.data}"
        " --seed {params.seed} --threads {threads}{params.max_iters}{params.init} > {log} 2>&1"
