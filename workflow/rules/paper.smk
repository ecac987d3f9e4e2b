# Stage "paper": what the paper suite needs besides the common rules: dataset archives and
# backbone weights (downloaded and checked), VOC/COCO conversion, multi-GPU training.
#
#   downloads/<archive>                 fetch_archive: apro fetch (MD5 of the dataset pages)
#   data/voc/, data/coco/               prepare_voc: apro prepare-voc, prepare_coco: apro prepare-coco
#   weights/<file>                      fetch_weights: apro fetch (sha256)
#   results/paper/<exp>/train/done.json train_paper: `apro train` under torchrun, resources.gpus processes
#
# An archive that cannot be downloaded fails naming its URL and where to put it by hand.


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
    conda:
        CONDA_ENV
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
    conda:
        CONDA_ENV
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
    conda:
        CONDA_ENV
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
    conda:
        CONDA_ENV
    shell:
        "{params.apro} fetch {wildcards.wfile} --out {output} > {log} 2>&1"


ruleorder: train_paper > train


rule train_paper:
    """Train one paper experiment on resources.gpus GPUs of one node (torchrun; the config sets launcher)."""
    input:
        unpack(paper_train_inputs),
    output:
        done=apro_layout.done_file("{suite}", "{experiment}", "{seed}"),
    wildcard_constraints:
        suite="paper",
    params:
        python=PYTHON,
        config=lambda w: shown_path(registry_job(w).config),
        work_dir=lambda w: registry_job(w).work_dir,
        seed=lambda w: int(w.seed),
    log:
        apro_layout.log_file("train", "{suite}", apro_layout.run_name("{experiment}", "{seed}")),
    benchmark:
        apro_layout.benchmark_file("train", "{suite}", apro_layout.run_name("{experiment}", "{seed}"))
    threads: 8
    resources:
        # the release's count for the entry (experiments/registry.yaml; the config's batch is written for it)
        gpus=lambda w: registry_job(w).experiment.gpus,
        gres=lambda w: f"gpu:{registry_job(w).experiment.gpus}",  # what the slurm executor requests
        mem_mb=64000,
        runtime=3 * 24 * 60,
    conda:
        CONDA_ENV
    shell:
        "{params.python} -m torch.distributed.run --standalone --nproc_per_node={resources.gpus}"
        " -m apro train {params.config} --work-dir {params.work_dir} --data-root {input.data}"
        " --seed {params.seed} --threads 1 > {log} 2>&1"
