# Stage "evaluate": every trained (or converted) model on its dataset's val split.
#
#   results/<suite>/<experiment>/seed<k>/metrics.json   apro evaluate <experiment> --suite --seed
#                                                       (mask AP / AP50 / AP75, or mIoU; metrics.run.json beside it)
#
# One rule for every suite: `apro evaluate` reads the config, dataset, labels and checkpoint (the trained
# work dir, or the converted release checkpoint) from the registry. A GPU experiment is evaluated on one GPU
# of its own (`apro with-gpus 1`).


rule evaluate:
    """`apro evaluate EXPERIMENT --suite SUITE --seed K`: writes metrics.json atomically."""
    input:
        unpack(evaluate_inputs),
    output:
        apro_layout.metrics_file("{suite}", "{experiment}", "{seed}"),
    params:
        apro=evaluate_launcher,
        registry=REGISTRY_ARG,
    log:
        apro_layout.log_file("evaluate", "{suite}", apro_layout.run_name("{experiment}", "{seed}")),
    benchmark:
        apro_layout.benchmark_file("evaluate", "{suite}", apro_layout.run_name("{experiment}", "{seed}"))
    threads: job_threads("evaluate")
    resources:
        **job_resources("evaluate"),
    shell:
        "{params.apro} evaluate {wildcards.experiment} --suite {wildcards.suite} --seed {wildcards.seed}"
        " --threads {threads} {params.registry} > {log} 2>&1"
