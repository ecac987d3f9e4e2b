# Stage "train": one training per (suite, experiment, seed) of the registry, and the release's checkpoints
# converted for the suites that evaluate them instead of training.
#
#   results/<suite>/<experiment>/seed<k>/train/done.json   train: apro train <experiment> --suite --seed
#   results/<suite>/<experiment>/checkpoint.pth            convert_released: apro convert-checkpoint
#
# One rule trains every experiment, instance or semantic, on CPU or GPUs: `apro train` reads the config,
# dataset, labels, schedule and starting point from the registry. An experiment with `gpus` in the
# registry (the paper settings) takes that many GPUs of one node, under torchrun when more than one, and
# on a machine shared by several jobs devices of its own (`apro with-gpus N`; under Slurm, its allocation).
#
# The only declared output is the completion marker done.json, which `apro train` writes atomically after
# the last iteration. The work dir around it (checkpoints, mmengine logs, train.run.json: the run's own
# record) is deliberately not an output: Snakemake never deletes it, so a training that was killed or failed
# resumes from its last checkpoint when the workflow runs again ("Auto resumed from the latest checkpoint" in
# the log). Snakemake empties the job's log before each attempt; mmengine's own log of every attempt stays in
# the work dir (<timestamp>/).


rule train:
    """Train (or resume) one run: `apro train EXPERIMENT --suite SUITE --seed K` (torchrun for several GPUs)."""
    input:
        unpack(train_inputs),
    output:
        done=apro_layout.done_file("{suite}", "{experiment}", "{seed}"),
    params:
        apro=train_launcher,
        registry=REGISTRY_ARG,
        threads=process_threads,
    log:
        apro_layout.log_file("train", "{suite}", apro_layout.run_name("{experiment}", "{seed}")),
    benchmark:
        apro_layout.benchmark_file("train", "{suite}", apro_layout.run_name("{experiment}", "{seed}"))
    threads: job_threads("train")
    resources:
        **job_resources("train"),
    shell:
        "{params.apro} train {wildcards.experiment} --suite {wildcards.suite} --seed {wildcards.seed}"
        " --threads {params.threads} {params.registry} > {log} 2>&1"


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
    shell:
        "{params.apro} convert-checkpoint {params.config} {input.checkpoint} --out {output} > {log} 2>&1"
