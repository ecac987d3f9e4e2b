"""Command-line entry point of the APro suite (``apro ...``).

Every Snakemake rule calls one of these subcommands, and each also works by
hand from a shell:

    apro build-ops [--inplace] [--marker results/ops/build.done]
    apro bench-ops [args for benchmarks/ops.py ...]

This module must stay importable before the compiled ops exist: it never
imports ``apro._C`` (or anything that does) at module level.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Sequence

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


def _write_atomic(path: Path, text: str) -> None:
    """Write text to path so that an interrupted run never leaves a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        _write_atomic(Path(marker), json.dumps(info, indent=2) + "\n")
    return info


def _load_benchmark_main(root: Path, name: str) -> Callable:
    path = root / "benchmarks" / f"{name}.py"
    if not path.is_file():
        raise CLIError(f"{path}: benchmark script not found (expected benchmarks/{name}.py with a main() function)")
    spec = importlib.util.spec_from_file_location(f"apro_benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    main = getattr(module, "main", None)
    if not callable(main):
        raise CLIError(f"{path}: has no main() function to call")
    return main


def _call_main(main: Callable, argv: list[str], prog: str) -> int:
    """Call main(argv) if it takes an argument, else main() with sys.argv set."""
    try:
        takes_argv = len(inspect.signature(main).parameters) > 0
    except (TypeError, ValueError):
        takes_argv = True
    if takes_argv:
        rc = main(argv)
    else:
        saved = sys.argv
        sys.argv = [prog, *argv]
        try:
            rc = main()
        finally:
            sys.argv = saved
    return int(rc or 0)


def _cmd_build_ops(args: argparse.Namespace) -> int:
    build_ops(_repo_root(args.repo), inplace=args.inplace, marker=args.marker, quiet=args.quiet)
    return 0


def _cmd_bench_ops(args: argparse.Namespace) -> int:
    root = _repo_root(args.repo)
    main = _load_benchmark_main(root, "ops")
    return _call_main(main, list(args.bench_args), str(root / "benchmarks" / "ops.py"))


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passes_unknown_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.bench_args = extra
    try:
        return args.func(args)
    except CLIError as exc:
        print(f"apro: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
