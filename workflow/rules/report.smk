# Stage "report": the tables and summary pages of a suite, for people.
#
#   reports/<suite>/results.csv   one row per experiment (mask AP, AP50, AP75, the paper's numbers)
#   reports/<suite>/summary.md    APro gain (box+gp+lp minus box), the table, wall time per job
#   reports/<suite>/summary.html  the same page in HTML (also in `snakemake --report`)


def suite_metrics(wildcards):
    """metrics.json of every job of the suite (only the selected ones for the configured suite)."""
    if wildcards.suite == SUITE:
        jobs = JOBS
    else:
        try:
            jobs = REGISTRY.jobs(wildcards.suite)
        except apro_registry.RegistryError as exc:
            raise WorkflowError(str(exc)) from None
    return [job.metrics for job in jobs]


rule report:
    """`apro report --suite SUITE`: reads results/ (and the benchmark files of the jobs), writes reports/<suite>/."""
    input:
        suite_metrics,
    output:
        csv=apro_layout.report_files("{suite}")["csv"],
        md=apro_layout.report_files("{suite}")["md"],
        html=report(apro_layout.report_files("{suite}")["html"], category="APro results"),
    params:
        registry=shown_path(_registry_path),
        out_dir=lambda w: apro_layout.report_dir(w.suite),
    log:
        apro_layout.job_log("{suite}", "report"),
    benchmark:
        apro_layout.job_benchmark("{suite}", "report")
    threads: 1
    resources:
        mem_mb=resources_of("report")["mem_mb"],
        runtime=resources_of("report")["runtime"],
    shell:
        "{APRO} report --suite {wildcards.suite} --registry {params.registry} --out-dir {params.out_dir}"
        " > {log} 2>&1"
