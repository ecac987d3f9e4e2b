# Stage "data": every dataset, label set and weights file the suites read, fetched or made, and checked.
#
#   data/<dataset>/                            make_data: apro make-data (the registry's synthetic datasets)
#   results/data/<dataset>/validated.json      validate_data: apro validate-data (apro.data.checks: errors stop, the
#                                              annotations mmdet drops are counted)
#   data/semantic/<dataset>/                   make_sparse_labels: apro make-sparse-labels (dense / point / scribble PNGs)
#   downloads/<archive>                        fetch_archive: apro fetch (MD5 of the dataset pages)
#   data/voc/, data/coco/                      prepare_voc: apro prepare-voc, prepare_coco: apro prepare-coco
#   weights/<file>                             fetch_weights: apro fetch (sha256; recorded on first download when
#                                              only a prefix is published)
#   data/downloads/voc/<source>                voc_fetch: apro fetch (the public VOC scribbles and points, sha256)
#   data/semantic/voc_aug/train/               voc_sparse_labels: apro convert-voc-labels
#   data/voc_aug/                              prepare_voc_semantic: apro prepare-voc-semantic
#
# A download that fails names its URL and where to put the file by hand; a file placed there by hand is only
# checked. External datasets (kind: external in the registry) are prepared by hand under data/<name>/; only
# their validation runs here.
#
# The semantic paper setting (Pascal VOC 2012 + SBD): voc_fetch downloads the ScribbleSup scribbles and point
# labels listed in experiments/semantic/voc_sources.yaml, voc_sparse_labels converts them into
# data/semantic/voc_aug/train/{scribble,point}/<stem>.png, and prepare_voc_semantic lays out data/voc_aug/
# from the VOC 2012 tar and SBD tgz plus those labels: JPEGImages/, SegmentationClassAug/,
# ImageSets/Segmentation/ (train_aug, val, train_aug_{point,scribble}), labels/train/{point,scribble}/, and
# what `apro train` reads: --data-root data/voc_aug (train/, val/) and --label-root data/voc_aug/labels
# ({train,val}/full, train/{point,scribble}).


rule make_data:
    """Write a synthetic COCO-format dataset (generated in a hidden folder, renamed into place when complete)."""
    output:
        directory(apro_layout.data_dir("{dataset}")),
    wildcard_constraints:
        dataset="|".join(SYNTHETIC_DATASETS) or "(?!)",
    params:
        apro=APRO,
        num_train=lambda w: dataset_spec(w).num_train,
        num_val=lambda w: dataset_spec(w).num_val,
        image_size=lambda w: dataset_spec(w).image_size,
        seed=lambda w: dataset_spec(w).seed,
        hues=lambda w: "" if dataset_spec(w).class_hue_width is None
        else f" --class-hue-width {dataset_spec(w).class_hue_width}",
    log:
        apro_layout.log_file("make_data", "data", "{dataset}"),
    benchmark:
        apro_layout.benchmark_file("make_data", "data", "{dataset}")
    threads: 1
    resources:
        mem_mb=resources_of("make_data")["mem_mb"],
        runtime=resources_of("make_data")["runtime"],
    shell:
        "{params.apro} make-data --out {output} --num-train {params.num_train} --num-val {params.num_val}"
        " --image-size {params.image_size} --seed {params.seed}{params.hues} --overwrite > {log} 2>&1"


rule validate_data:
    """Check the annotation files and images (apro.data.checks): errors fail naming file and id, the annotations
    mmdet drops are counted."""
    input:
        lambda w: dataset_spec(w).path,
    output:
        apro_layout.validated_marker("{dataset}"),
    log:
        apro_layout.log_file("validate_data", "data", "{dataset}"),
    benchmark:
        apro_layout.benchmark_file("validate_data", "data", "{dataset}")
    params:
        apro=APRO,
    threads: 1
    resources:
        mem_mb=resources_of("make_data")["mem_mb"],
        runtime=resources_of("make_data")["runtime"],
    shell:
        "{params.apro} validate-data --data-root {input} --out {output} > {log} 2>&1"


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
    shell:
        "{params.apro} make-sparse-labels --data-root {input.data} --out {output} --seed {params.seed} --overwrite > {log} 2>&1"


rule fetch_archive:
    """Download one dataset archive and check its MD5 (a file placed there by hand is only checked)."""
    output:
        apro_layout.download("{archive}"),
    wildcard_constraints:
        archive="|".join(re.escape(a) for a in apro_downloads.ARCHIVES),
    log:
        apro_layout.log_file("fetch", "data", "{archive}"),
    params:
        apro=APRO,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=240,
    shell:
        "{params.apro} fetch {wildcards.archive} --out {output} > {log} 2>&1"


rule prepare_voc:
    """Unpack VOC 2012 + SBD and convert them to the augmented instance set (10,582 / 1,449 images)."""
    input:
        voc=apro_layout.download("VOCtrainval_11-May-2012.tar"),
        sbd=apro_layout.download("benchmark.tgz"),
    output:
        directory(apro_layout.data_dir("voc")),
    log:
        apro_layout.log_file("prepare", "data", "voc"),
    benchmark:
        apro_layout.benchmark_file("prepare", "data", "voc")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        apro=APRO,
        src=apro_layout.download("voc_src"),  # the two archives unpacked (removed afterwards)
    shell:
        "(rm -rf {params.src} && mkdir -p {params.src}"
        " && tar -xf {input.voc} -C {params.src} && tar -xzf {input.sbd} -C {params.src}"
        " && {params.apro} prepare-voc --voc {params.src}/VOCdevkit/VOC2012"
        " --sbd {params.src}/benchmark_RELEASE/dataset --out {output}.part"
        " && mv {output}.part {output} && rm -rf {params.src}) > {log} 2>&1"


rule prepare_coco:
    """Unpack COCO 2017 into data/coco/{train,val,annotations} and check image and instance counts."""
    input:
        apro_layout.download("train2017.zip"),
        apro_layout.download("val2017.zip"),
        apro_layout.download("annotations_trainval2017.zip"),
    output:
        directory(apro_layout.data_dir("coco")),
    log:
        apro_layout.log_file("prepare", "data", "coco"),
    benchmark:
        apro_layout.benchmark_file("prepare", "data", "coco")
    params:
        apro=APRO,
        downloads=lambda w, input: str(Path(input[0]).parent),  # the folder of fetch_archive's files
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    shell:
        "{params.apro} prepare-coco --downloads {params.downloads} --out {output} > {log} 2>&1"


rule fetch_weights:
    """Download one ImageNet-pretrained backbone checkpoint and check its sha256."""
    output:
        apro_layout.weights_file("{wfile}"),
    wildcard_constraints:
        wfile="|".join(re.escape(w) for w in apro_weights.WEIGHTS),
    log:
        apro_layout.log_file("fetch", "weights", "{wfile}"),
    params:
        apro=APRO,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=60,
    shell:
        "{params.apro} fetch {wildcards.wfile} --out {output} > {log} 2>&1"


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
    shell:
        "{params.apro} prepare-voc-semantic --voc-tar {input.voc} --sbd-tgz {input.sbd} --sparse {input.sparse}"
        " --out {output} > {log} 2>&1"
