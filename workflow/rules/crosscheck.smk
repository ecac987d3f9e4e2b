# Stage "crosscheck": the APro release and this suite side by side (suite `crosscheck`).
#
#   .venv-original/apro-original-env.json      original_env: apro original-env (the release's own stack)
#   results/crosscheck/<entry>/crosscheck.json crosscheck: apro crosscheck <entry> (losses, gradients,
#                                              predictions, pipelines of both stacks on one batch)
#   reports/crosscheck/summary.md, summary.csv crosscheck_report: apro crosscheck-report
#
#   snakemake --cores 2 --config suite=crosscheck original=/path/to/APro-clone


rule original_env:
    """`apro original-env`: the release's checkout, mmcv-full 1.6 with its CPU ops, its mmdet 2.25 fork and GP op."""
    output:
        apro_layout.original_env_record(),
    params:
        apro=APRO,
        original=original_arg,
        venv=lambda w, output: Path(output[0]).parent,
    log:
        apro_layout.job_log("crosscheck", "original_env"),
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{params.apro} original-env --venv {params.venv}{params.original} --jobs {threads} > {log} 2>&1"


rule crosscheck:
    """`apro crosscheck <entry>`: the entry through the release's code and this suite's, compared term by term."""
    input:
        unpack(crosscheck_inputs),
    output:
        apro_layout.crosscheck_result("{experiment}"),
    params:
        apro=APRO,
        venv=lambda w, input: Path(input.venv).parent,
    log:
        apro_layout.log_file("crosscheck", "crosscheck", "{experiment}"),
    benchmark:
        apro_layout.benchmark_file("crosscheck", "crosscheck", "{experiment}")
    threads: 2
    resources:
        mem_mb=crosscheck_mem_mb,
        runtime=60,
    shell:
        "{params.apro} crosscheck {wildcards.experiment} --venv {params.venv} --threads {threads} --no-report"
        " > {log} 2>&1"


rule crosscheck_report:
    """`apro crosscheck-report`: reports/crosscheck/summary.md and summary.csv, one row per entry."""
    input:
        lambda w: [apro_layout.crosscheck_result(job.experiment.name) for job in JOBS],
    output:
        **apro_layout.crosscheck_report_files(),
    params:
        apro=APRO,
        entries=lambda w: " ".join(job.experiment.name for job in JOBS),
    log:
        apro_layout.job_log("crosscheck", "report"),
    threads: 1
    shell:
        "{params.apro} crosscheck-report {params.entries} > {log} 2>&1"
