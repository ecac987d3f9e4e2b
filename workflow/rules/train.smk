# Stage "train": one training per (suite, experiment) of the registry.
#
# The only declared output is the completion marker done.json, which
# `apro train` writes atomically after the last iteration. The work dir around
# it (checkpoints, mmengine logs) is deliberately not an output: Snakemake
# never deletes it, so a training that was killed or failed resumes from its
# last checkpoint when the workflow runs again ("Auto resumed from the latest
# checkpoint" in the log). Snakemake empties the job's log before each attempt;
# mmengine's own log of every attempt stays in the work dir (<timestamp>/).


def train_inputs(wildcards):
    job = registry_job(wildcards)
    inputs = {
        "config": [shown_path(p) for p in apro_registry.config_files(job.config)],
        "data": job.data_root,
        "validated": apro_layout.validated_marker(job.dataset.name),
    }
    if job.init_done:  # a shared first stage (registry: init_from) is trained first
        inputs["init"] = job.init_done
    return inputs


def max_iters_arg(wildcards):
    n = registry_job(wildcards).max_iters
    return f" --max-iters {n}" if n else ""


def train_threads(wildcards):
    """The experiment's own `threads` (registry), else the workflow's train_threads."""
    return registry_job(wildcards).experiment.threads or config["train_threads"]


def init_arg(wildcards):
    init = registry_job(wildcards).init_done
    return f" --init-from {init}" if init else ""


rule train:
    """Train (or resume) one experiment: `apro train CONFIG --work-dir results/<suite>/<experiment>/train ...`."""
    input:
        unpack(train_inputs),
    output:
        done=apro_layout.done_file("{suite}", "{experiment}"),
    params:
        config=lambda w: shown_path(registry_job(w).config),
        work_dir=lambda w: registry_job(w).work_dir,
        max_iters=max_iters_arg,
        init=init_arg,
        seed=config["seed"],
    log:
        apro_layout.log_file("train", "{suite}", "{experiment}"),
    benchmark:
        apro_layout.benchmark_file("train", "{suite}", "{experiment}")
    threads: train_threads
    resources:
        mem_mb=resources_of("train")["mem_mb"],
        runtime=resources_of("train")["runtime"],
    shell:
        "{APRO} train {params.config} --work-dir {params.work_dir} --data-root {input.data}"
        " --seed {params.seed} --threads {threads}{params.max_iters}{params.init} > {log} 2>&1"
