# Stage "report": the tables and summary pages of a suite, for people.
#
#   reports/<suite>/results.csv   one row per run: experiment and seed (mask AP, AP50, AP75, the paper's numbers)
#   reports/<suite>/summary.md    APro gain (box+gp+lp minus box, paired by seed, 95% interval), the table
#                                 (mean ± std (n) per experiment; paper entries: difference and verdict), wall time per job
#   reports/<suite>/summary.html  the same page in HTML (also in `snakemake --report`)
#   reports/<suite>/metafiles/    <entry>/metafile.yml per model-zoo entry (mmdetection's convention; empty
#                                 for a suite without paper numbers), checked by workflow/schemas/metafile.schema.yaml


rule report:
    """`apro report --suite SUITE`: reads results/ (and the benchmark files of the jobs), writes reports/<suite>/."""
    input:
        suite_metrics,
    output:
        csv=apro_layout.report_files("{suite}")["csv"],
        md=apro_layout.report_files("{suite}")["md"],
        html=report(apro_layout.report_files("{suite}")["html"], category="APro results"),
        metafiles=directory(apro_layout.metafiles_dir("{suite}")),
    wildcard_constraints:
        suite=REPORTED_SUITES,  # a compare suite's summary is crosscheck_report's
    params:
        apro=APRO,
        registry=shown_path(REGISTRY_FILE),
        out_dir=lambda w: apro_layout.report_dir(w.suite),
        seeds=",".join(map(str, SEEDS)),
    log:
        apro_layout.job_log("{suite}", "report"),
    benchmark:
        apro_layout.job_benchmark("{suite}", "report")
    threads: 1
    resources:
        mem_mb=resources_of("report")["mem_mb"],
        runtime=resources_of("report")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "{params.apro} report --suite {wildcards.suite} --registry {params.registry} --out {params.out_dir}"
        " --seeds {params.seeds} > {log} 2>&1"
