# Stage "report": what people read of a suite: tables, summary pages, figures and the HTML report.
#
#   reports/<suite>/results.csv   report: one row per run (experiment, seed; mask AP, AP50, AP75 or mIoU, the
#                                 paper's numbers, status and times from each run's own record, *.run.json)
#   reports/<suite>/summary.md    APro gain (box+gp+lp minus box, paired by seed, 95% interval), the table
#                                 (mean ± std (n) per experiment; paper entries: difference and verdict), wall time
#                                 per step
#   reports/<suite>/summary.html  the same page in HTML (also in `snakemake --report`)
#   reports/<suite>/metafiles/    <entry>/metafile.yml per model-zoo entry (mmdetection's convention; empty for a
#                                 suite without paper numbers), checked by apro/resources/metafile.schema.yaml
#   reports/<suite>/figures/      visualize: affinity_<id>.png, instances_<id>.png, photo_*.png, figures.json;
#                                 the custom suite's: predict_figures (apro predict: <image>.png, <image>.json)
#   reports/<suite>/index.html    html_report: results, ablation, affinities, ops benchmark, provenance
#
# The figures take seconds; the instance figures show the suite's APro model (the first box+gp+lp run, else
# the first box-supervised one, of the first seed) once it is trained.


rule report:
    """`apro report --suite SUITE`: reads results/ (metrics and the runs' records), writes reports/<suite>/."""
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
    shell:
        "{params.apro} report --suite {wildcards.suite} --registry {params.registry} --out {params.out_dir}"
        " --seeds {params.seeds} > {log} 2>&1"


rule visualize:
    """`apro visualize`: GP / tree-filter / LP / BoxInst affinities of a picked pixel, and per instance the
    prediction beside its GP and LP soft pseudo labels."""
    input:
        unpack(figures_inputs),
    output:
        report(directory(apro_layout.figures_dir("{suite}")), patterns=["{name}.png"], category="Affinities",
               caption=str(ROOT / "workflow" / "report" / "affinity.rst")),
    wildcard_constraints:
        suite=f"(?!{apro_custom.SUITE}(?![a-z0-9_]))[a-z0-9][a-z0-9_]*",  # the custom suite's figures: predict_figures
    params:
        apro=APRO,
        model=figures_model_args,
        images=2,
    log:
        apro_layout.job_log("{suite}", "visualize"),
    benchmark:
        apro_layout.job_benchmark("{suite}", "visualize")
    threads: 1
    resources:
        mem_mb=resources_of("report")["mem_mb"],
        runtime=resources_of("report")["runtime"],
    shell:
        "{params.apro} visualize --data-root {input.data} --out {output} --images {params.images}{params.model}"
        " > {log} 2>&1"


rule predict_figures:
    """The custom suite's figures: `apro predict` of its APro model (else its first box-supervised one) on the
    first val images: per image the overlay PNG and the COCO json of its predicted instances."""
    input:
        unpack(figures_inputs),
    output:
        report(directory(apro_layout.figures_dir("{suite}")), patterns=["{name}.png"], category="Predictions"),
    wildcard_constraints:
        suite=apro_custom.SUITE,
    params:
        apro=APRO,
        model=figures_model_args,
        images=4,
    log:
        apro_layout.job_log("{suite}", "predict"),
    benchmark:
        apro_layout.job_benchmark("{suite}", "predict")
    threads: 1
    resources:
        mem_mb=resources_of("report")["mem_mb"],
        runtime=resources_of("report")["runtime"],
    shell:
        "{params.apro} predict {input.data}/val --limit {params.images} --out {output}{params.model} > {log} 2>&1"


rule html_report:
    """`apro html-report --suite SUITE`: reports/<suite>/index.html, self-contained with relative links."""
    input:
        metrics=suite_metrics,
        tables=lambda w: list(apro_layout.report_files(w.suite).values()),
        figures=lambda w: [apro_layout.figures_dir(w.suite)] if suite_has_figures(w.suite) else [],
        ops=lambda w: [apro_layout.ops_table()] if w.suite in config["ops_benchmark_suites"] else [],
    output:
        report(apro_layout.html_page("{suite}"), category="APro results",
               caption=str(ROOT / "workflow" / "report" / "index.rst")),
        apro_layout.ablation_table("{suite}"),
    params:
        apro=APRO,
        registry=shown_path(REGISTRY_FILE),
        out_dir=lambda w: apro_layout.report_dir(w.suite),
        seeds=",".join(map(str, SEEDS)),
    log:
        apro_layout.job_log("{suite}", "html_report"),
    benchmark:
        apro_layout.job_benchmark("{suite}", "html_report")
    threads: 1
    resources:
        mem_mb=resources_of("report")["mem_mb"],
        runtime=resources_of("report")["runtime"],
    shell:
        "{params.apro} html-report --suite {wildcards.suite} --registry {params.registry} --out {params.out_dir}"
        " --seeds {params.seeds} > {log} 2>&1"
