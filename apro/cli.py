"""Command-line entry point of the APro suite (``apro ...``).

Every Snakemake rule calls one of these subcommands, and each also works by
hand from a shell:

    apro build-ops [--inplace] [--marker results/ops/build.done]
    apro bench-ops [args for benchmarks/ops.py ...]
    apro list [--suite SUITE]                        the experiment registry
    apro make-data OUT [--num-train N ...]           apro.data.synthetic
    apro validate-data DATA_ROOT [--out FILE]        check annotations and images
    apro train CONFIG --work-dir DIR --data-root DATA [...]      apro.train
    apro evaluate CONFIG CHECKPOINT --data-root DATA --out FILE  apro.evaluate
    apro report --suite SUITE [--results-root DIR]   apro.report
    apro make-sparse-labels DATA --out LABELS        apro.semantic.labels (points, scribbles)
    apro train-semantic / evaluate-semantic ...      apro.semantic.run (mmseg, mIoU)
    apro visualize --data-root DATA --out-dir DIR    apro.visualize (affinity figures)
    apro html-report --suite SUITE                   apro.html_report (reports/<suite>/index.html)

``make-data``, ``train``, ``evaluate`` and ``report`` pass their arguments on
to the module's own ``main`` (``apro train --help`` shows them); ``train`` and
``evaluate`` first check the dataset's annotation files, so a missing or
corrupt one fails at once with its path in the message. ``train`` also records
what decides the run (config files, training annotations, seed, iterations) in
``<work-dir>/apro_run.json``: a work dir left by a run with other settings is
moved aside (``<work-dir>.stale-<time>``) instead of being resumed.

This module must stay importable before the compiled ops exist: it never
imports ``apro._C`` (or anything that does) at module level.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from apro import layout
from apro.io import write_json_atomic, write_text_atomic

#: The repository root: the folder holding setup.py next to the apro package.
REPO_ROOT = Path(__file__).resolve().parent.parent


class CLIError(Exception):
    """A user-facing error: printed as ``apro: error: ...`` with exit code 2."""


def _repo_root(path: str | os.PathLike | None) -> Path:
    root = Path(path).resolve() if path is not None else REPO_ROOT
    if not (root / "setup.py").is_file():
        raise CLIError(f"--repo {root}: expected the suite's repository root, a folder containing setup.py")
    return root


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
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env=_env_with_venv_on_path(),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise CLIError(
            "the build finished but `import apro._C` fails:\n" + (proc.stderr.strip() or proc.stdout.strip())
        )
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
        raise CLIError(f"building the ops failed (exit {proc.returncode}): {' '.join(cmd)}")
    info = _probe_ops(root)
    info["command"] = " ".join(cmd)
    print(f"apro build-ops: built {info['so']} (torch {info['torch']})", file=sys.stderr)
    if marker is not None:
        write_text_atomic(Path(marker), json.dumps(info, indent=2) + "\n")
    return info


def _cmd_build_ops(args: argparse.Namespace) -> int:
    build_ops(_repo_root(args.repo), inplace=args.inplace, marker=args.marker, quiet=args.quiet)
    return 0


def _cmd_bench_ops(args: argparse.Namespace) -> int:
    root = _repo_root(args.repo)
    path = root / "benchmarks" / "ops.py"
    if not path.is_file():
        raise CLIError(f"{path}: benchmark script not found (expected benchmarks/ops.py, run as a script)")
    # a process of its own, run as __main__: its memory probes spawn fresh interpreters, which
    # re-import the script by path (a module loaded here by file name would not be importable there)
    return subprocess.call([sys.executable, str(path), *args.bench_args])


# ---------------------------------------------------------------- experiments

#: subcommands that hand their arguments to a module's main(argv)
_PASSTHROUGH = {
    "make-data": "write the synthetic COCO dataset (apro.data.synthetic; --help for its options)",
    "train": "train (or resume) an mmdet config, or a registry experiment: apro train box_gp_lp --suite demo "
             "(apro.train; --help for its options)",
    "evaluate": "mask AP of a trained model on the val split, or of a registry experiment "
                "(apro.evaluate; --help for its options)",
    "report": "results.csv and summary pages of a suite (apro.report; --help for its options)",
    "make-sparse-labels": "dense / point / scribble label PNGs from instance masks (apro.semantic.labels)",
    "train-semantic": "train (or resume) an mmseg config (apro.semantic.run; --help for its options)",
    "evaluate-semantic": "mIoU of a trained mmseg model on the val split (apro.semantic.run)",
    "visualize": "affinity figures of chosen val images (apro.visualize; --help for its options)",
    "html-report": f"the HTML report {layout.html_page('<suite>')} (apro.html_report; --help for its options)",
    "convert-checkpoint": "a released APro checkpoint (mmdet 2.25) for this suite's model, loaded strictly "
                          "(apro.checkpoints)",
}


_SEMANTIC = {
    "make-sparse-labels": ("apro.semantic.labels", "main"),
    "train-semantic": ("apro.semantic.run", "train_main"),
    "evaluate-semantic": ("apro.semantic.run", "evaluate_main"),
}


def validate_data_root(data_root: str | os.PathLike, splits: Sequence[str] = ("train", "val")) -> dict:
    """Checks ``<data_root>/annotations/instances_<split>.json`` (apro.data.coco_io) and that every
    image it lists exists under ``<data_root>/<split>/``; returns counts per split.

    Raises CLIError naming the first bad file.
    """
    from apro.data.coco_io import load_coco_annotations

    root = Path(data_root)
    if not root.is_dir():
        raise CLIError(f"data root {root}: no such folder (expected train/, val/ and annotations/ in COCO format; "
                       "`apro make-data` writes the synthetic one)")
    summary = {"data_root": str(root), "splits": {}}
    for split in splits:
        ann_file = root / "annotations" / f"instances_{split}.json"
        try:
            data = load_coco_annotations(ann_file)
        except ValueError as exc:
            raise CLIError(f"bad annotation file: {exc}") from None
        image_dir = root / split
        missing = [im["file_name"] for im in data["images"] if not (image_dir / im["file_name"]).is_file()]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise CLIError(f"{ann_file}: {len(missing)} image(s) it lists are missing from {image_dir}/: "
                           f"{', '.join(missing[:3])}{more}")
        summary["splits"][split] = {"annotation_file": str(ann_file), "images": len(data["images"]),
                                    "annotations": len(data["annotations"]),
                                    "categories": len(data["categories"])}
    return summary


def _cmd_validate_data(args: argparse.Namespace) -> int:
    summary = validate_data_root(args.data_root, args.splits)
    for split, info in summary["splits"].items():
        print(f"apro validate-data: {info['annotation_file']}: {info['images']} images, "
              f"{info['annotations']} annotations, {info['categories']} categories: OK")
    if args.out is not None:
        write_json_atomic(args.out, summary)
    return 0


def _load_registry(path):
    from apro import registry

    try:
        return registry.load_registry(path)
    except registry.RegistryError as exc:
        raise CLIError(str(exc)) from None


def _cmd_list(args: argparse.Namespace) -> int:
    from apro import registry

    reg = _load_registry(args.registry)
    try:
        suites = [reg.suite(args.suite).name] if args.suite else list(reg.suites)
    except registry.RegistryError as exc:
        raise CLIError(str(exc)) from None
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


def expand_experiment(command: str, argv: list[str]) -> list[str]:
    """``apro train NAME [--suite S]`` / ``apro evaluate NAME [--suite S]``: the registry experiment's arguments.

    NAME is an experiment of the registry (``--registry``, default experiments/registry.yaml) in suite
    ``--suite`` (default demo); the workflow's paths, data root, schedule, starting point and threads for
    it are filled in, and any other option given afterwards overrides them. A config path is left as is.
    """
    if not argv or argv[0].startswith("-") or argv[0].endswith(".py") or Path(argv[0]).exists():
        return argv
    name, rest = argv[0], argv[1:]
    pick = argparse.ArgumentParser(add_help=False)
    pick.add_argument("--suite", default="demo")
    pick.add_argument("--registry", default=None)
    known, rest = pick.parse_known_args(rest)
    from apro.registry import RegistryError

    try:
        job = _load_registry(known.registry).job(known.suite, name)
    except RegistryError as exc:
        raise CLIError(f"{name}: neither a config file nor a runnable experiment: {exc}") from None
    if job.experiment.framework == "DeepLabV3+":
        raise CLIError(f"{name} is a semantic (mmseg) experiment: run `apro {command}-semantic` with its config "
                       f"({job.config}), or the workflow")
    if command == "train":
        if job.checkpoint is not None:
            raise CLIError(f"{name} of suite {known.suite} evaluates a released checkpoint; nothing to train")
        out = [str(job.config), "--work-dir", job.work_dir, "--data-root", job.data_root]
        out += ["--max-iters", str(job.max_iters)] if job.max_iters else []
        out += ["--init-from", job.init_done] if job.init_done else []
        out += ["--threads", str(job.experiment.threads)] if job.experiment.threads else []
    else:
        out = [str(job.config), job.checkpoint or job.work_dir, "--data-root", job.data_root, "--out", job.metrics]
    print(f"apro {command} {name} --suite {known.suite}: {' '.join(out + rest)}", file=sys.stderr, flush=True)
    return out + rest


def _cmd_passthrough(args: argparse.Namespace) -> int:
    argv = list(args.args)
    if args.command in ("train", "evaluate"):
        argv = expand_experiment(args.command, argv)
    if args.command == "make-data":
        from apro.data import synthetic

        return int(synthetic.main(argv) or 0)
    if args.command == "report":
        from apro import report

        return int(report.main(argv) or 0)
    if args.command == "convert-checkpoint":
        from apro import checkpoints

        return int(checkpoints.main(argv) or 0)
    if args.command in ("visualize", "html-report"):
        from apro import html_report, visualize

        return int((visualize if args.command == "visualize" else html_report).main(argv) or 0)
    if args.command in _SEMANTIC:
        # the semantic suite's own entry points (mmseg); they check their inputs themselves
        import importlib

        module_name, main_name = _SEMANTIC[args.command]
        return int(getattr(importlib.import_module(module_name), main_name)(argv) or 0)
    if args.command == "train":
        from apro import train as module
    else:
        from apro import evaluate as module
    parsed = module.build_parser().parse_args(argv)  # --help and usage errors exit here, as the module would
    validate_data_root(parsed.data_root, ("train", "val") if args.command == "train" else ("val",))
    if args.command == "train" and not Path(parsed.config).is_file():
        raise CLIError(f"config {parsed.config}: no such file (expected an mmdet config, e.g. experiments/demo/box.py)")
    return int(module.main(argv) or 0)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apro", description="APro reproducibility suite")
    parser.add_argument("--repo", default=None, help="repository root (default: the one holding this package)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("build-ops", help="compile the C++ ops (apro._C) from csrc/ and check they import")
    p.add_argument("--inplace", action="store_true",
                   help="use `setup.py build_ext --inplace` (incremental) instead of `pip install -e .`")
    p.add_argument("--marker", type=Path, default=None,
                   help="write this JSON file (.so path, torch version) atomically when the build succeeded")
    p.add_argument("-q", "--quiet", action="store_true", help="less output from pip")
    p.set_defaults(func=_cmd_build_ops)

    p = sub.add_parser("bench-ops", help="run benchmarks/ops.py; other arguments are passed on to it (e.g. --out FILE)")
    p.set_defaults(func=_cmd_bench_ops, passes_unknown_args=True)

    p = sub.add_parser("list", help="list the suites and experiments of the registry")
    p.add_argument("--suite", default=None, help="only this suite's experiments")
    p.add_argument("--registry", default=None, help="registry file (default: experiments/registry.yaml)")
    p.add_argument("--names", action="store_true", help="print only the experiment names, one a line")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("validate-data", help="check a COCO-format dataset folder (annotation files and images)")
    p.add_argument("data_root", help="dataset folder with annotations/instances_<split>.json and <split>/")
    p.add_argument("--splits", nargs="+", default=["train", "val"], help="splits to check (default: train val)")
    p.add_argument("--out", type=Path, default=None, help="write a JSON summary here (atomically) when valid")
    p.set_defaults(func=_cmd_validate_data)

    for name, helptext in _PASSTHROUGH.items():
        p = sub.add_parser(name, help=helptext, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)
        p.set_defaults(func=_cmd_passthrough)
    return parser


def _split_passthrough(argv: list[str]) -> tuple[str, list[str]] | None:
    """(command, its arguments) when argv names a pass-through subcommand (after optional --repo)."""
    i = 0
    while i < len(argv) and argv[i].startswith("--repo"):
        i += 1 if "=" in argv[i] else 2
    if i < len(argv) and argv[i] in _PASSTHROUGH:
        return argv[i], argv[i + 1:]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    passthrough = _split_passthrough(argv)
    if passthrough is not None:
        # argparse's REMAINDER cannot take options first (`apro train --help`): hand them on as they are
        args = argparse.Namespace(command=passthrough[0], args=passthrough[1], func=_cmd_passthrough)
        try:
            return args.func(args)
        except CLIError as exc:
            print(f"apro {args.command}: error: {exc}", file=sys.stderr)
            return 2
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passes_unknown_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.bench_args = extra
    try:
        return args.func(args)
    except CLIError as exc:
        print(f"apro {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
