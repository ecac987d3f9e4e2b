# Semantic segmentation from points and scribbles (DeepLabV3+, mmseg 1.x).
#
#   data/semantic/<dataset>/                     apro make-sparse-labels (dense / point / scribble PNGs)
#   results/<suite>/<experiment>/train/done.json apro train --label-root ...   (experiments with framework DeepLabV3+)
#   results/<suite>/<experiment>/metrics.json    apro evaluate --label-root ... (mIoU, mmseg's IoUMetric)
#
# The train / evaluate outputs have the same paths as the instance rules'
# (train.smk, evaluate.smk), so the report rule collects both; the wildcard
# constraints below limit these rules to the registry's DeepLabV3+ experiments
# and `ruleorder` picks them over the mmdet rules for those.
#
# Paper setting (Pascal VOC 2012 + SBD): voc_fetch downloads the public
# ScribbleSup scribbles and point labels listed in experiments/semantic/voc_sources.yaml
# and checks their sha256; voc_sparse_labels converts them into
# data/semantic/voc_aug/train/{scribble,point}/<stem>.png (apro convert-voc-labels);
# prepare_voc_semantic lays out data/voc_aug/ from the VOC 2012 tar and SBD tgz of
# fetch_archive (paper.smk) plus those labels: JPEGImages/, SegmentationClassAug/,
# ImageSets/Segmentation/ (train_aug, val, train_aug_{point,scribble}), labels/train/{point,scribble}/,
# and what `apro train` reads: --data-root data/voc_aug (train/, val/) and
# --label-root data/voc_aug/labels ({train,val}/full, train/{point,scribble}).

SEMANTIC_FRAMEWORKS = ("DeepLabV3+",)
SEMANTIC_EXPERIMENTS = [e.name for e in REGISTRY.experiments.values() if e.framework in SEMANTIC_FRAMEWORKS]


rule make_sparse_labels:
    """Dense, point and scribble labels of a synthetic dataset (written to a hidden folder, renamed when complete)."""
    input:
        data=apro_layout.data_dir("{dataset}"),
        validated=apro_layout.validated_marker("{dataset}"),
    output:
        directory(apro_layout.sparse_labels_dir("{dataset}")),
    wildcard_constraints:
        dataset="|".join(SYNTHETIC_DATASETS) or "(?!)",
    params:
        apro=APRO,
        seed=lambda w: REGISTRY.datasets[w.dataset].seed,
    log:
        apro_layout.log_file("make_sparse_labels", "data", "{dataset}"),
    benchmark:
        apro_layout.benchmark_file("make_sparse_labels", "data", "{dataset}")
    threads: 1
    resources:
        mem_mb=resources_of("make_data")["mem_mb"],
        runtime=resources_of("make_data")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "{params.apro} make-sparse-labels --data-root {input.data} --out {output} --seed {params.seed} --overwrite > {log} 2>&1"


rule train_semantic:
    """`apro train CONFIG --work-dir ... --label-root data/semantic/<dataset>` with an mmseg config (resumes alike)."""
    input:
        unpack(semantic_inputs),
    output:
        done=apro_layout.done_file("{suite}", "{experiment}", "{seed}"),
    wildcard_constraints:
        experiment="|".join(SEMANTIC_EXPERIMENTS) or "(?!)",
    params:
        apro=APRO,
        config=lambda w: shown_path(registry_job(w).config),
        work_dir=lambda w: registry_job(w).work_dir,
        labels=lambda w: registry_job(w).dataset.label_root,
        max_iters=max_iters_arg,
        seed=lambda w: int(w.seed),
    log:
        apro_layout.log_file("train", "{suite}", apro_layout.run_name("{experiment}", "{seed}")),
    benchmark:
        apro_layout.benchmark_file("train", "{suite}", apro_layout.run_name("{experiment}", "{seed}"))
    threads: config["train_threads"]
    resources:
        **semantic_resources("train"),
    conda:
        CONDA_ENV
    shell:
        "{params.apro} train {params.config} --work-dir {params.work_dir} --data-root {input.data}"
        " --label-root {params.labels} --seed {params.seed} --threads {threads}{params.max_iters} > {log} 2>&1"


rule evaluate_semantic:
    """`apro evaluate CONFIG WORK_DIR --label-root ... --out metrics.json`: mIoU on the dense val labels."""
    input:
        unpack(semantic_inputs),
        done=apro_layout.done_file("{suite}", "{experiment}", "{seed}"),
    output:
        apro_layout.metrics_file("{suite}", "{experiment}", "{seed}"),
    wildcard_constraints:
        experiment="|".join(SEMANTIC_EXPERIMENTS) or "(?!)",
    params:
        apro=APRO,
        config=lambda w: shown_path(registry_job(w).config),
        work_dir=lambda w: registry_job(w).work_dir,
        labels=lambda w: registry_job(w).dataset.label_root,
        seed=lambda w: int(w.seed),
    log:
        apro_layout.log_file("evaluate", "{suite}", apro_layout.run_name("{experiment}", "{seed}")),
    benchmark:
        apro_layout.benchmark_file("evaluate", "{suite}", apro_layout.run_name("{experiment}", "{seed}"))
    threads: config["eval_threads"]
    resources:
        **semantic_resources("evaluate"),
    conda:
        CONDA_ENV
    shell:
        "{params.apro} evaluate {params.config} {params.work_dir} --data-root {input.data}"
        " --label-root {params.labels} --out {output} --seed {params.seed} --threads {threads} > {log} 2>&1"


ruleorder: train_semantic > train
ruleorder: evaluate_semantic > evaluate


# ---------------------------------------------------------------- paper setting: VOC 2012
VOC_SOURCES = str(apro_voc.SOURCES_FILE)


rule voc_fetch:
    """Download one public label archive of voc_sources.yaml and check its sha256 (fails naming the file)."""
    input:
        VOC_SOURCES,
    output:
        apro_layout.voc_label_source("{source}"),
    wildcard_constraints:
        source="scribblesup|points",
    log:
        apro_layout.job_log("data", "voc_fetch.{source}"),
    params:
        apro=APRO,
    threads: 1
    resources:
        mem_mb=500,
        runtime=60,
    conda:
        CONDA_ENV
    shell:
        "{params.apro} fetch {wildcards.source} --sources {input} --out {output} > {log} 2>&1"


rule voc_sparse_labels:
    """ScribbleSup scribbles and point labels -> data/semantic/voc_aug/train/{scribble,point}/<stem>.png."""
    input:
        scribblesup=apro_layout.voc_label_source("scribblesup"),
        points=apro_layout.voc_label_source("points"),
        sources=VOC_SOURCES,
    output:
        directory(f"{apro_layout.sparse_labels_dir(VOC_SEMANTIC)}/train"),
    log:
        apro_layout.job_log("data", "voc_sparse_labels"),
    params:
        apro=APRO,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        CONDA_ENV
    shell:
        "{params.apro} convert-voc-labels --scribblesup {input.scribblesup} --points {input.points}"
        " --sources {input.sources} --out {output} > {log} 2>&1"


rule prepare_voc_semantic:
    """VOC 2012 tar + SBD tgz + the sparse labels -> data/voc_aug/ (apro prepare-voc-semantic; 10,582 / 1,449 images)."""
    input:
        voc=apro_layout.download("VOCtrainval_11-May-2012.tar"),
        sbd=apro_layout.download("benchmark.tgz"),
        sparse=f"{apro_layout.sparse_labels_dir(VOC_SEMANTIC)}/train",
    output:
        directory(apro_layout.data_dir(VOC_SEMANTIC)),
    log:
        apro_layout.log_file("prepare", "data", VOC_SEMANTIC),
    benchmark:
        apro_layout.benchmark_file("prepare", "data", VOC_SEMANTIC)
    params:
        apro=APRO,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=180,
    conda:
        CONDA_ENV
    shell:
        "{params.apro} prepare-voc-semantic --voc-tar {input.voc} --sbd-tgz {input.sbd} --sparse {input.sparse}"
        " --out {output} > {log} 2>&1"
