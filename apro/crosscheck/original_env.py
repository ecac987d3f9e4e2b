"""The APro release's own stack in a virtual environment of its own, for the side-by-side check.

    apro original-env --original PATH [--venv .venv-original]      (make original-env ORIGINAL=PATH)

PATH is a git clone (or bare mirror) of the release, github.com/CircleRadon/APro, holding commit
:data:`RELEASE_COMMIT`; without PATH the release is cloned from GitHub. The build:

1. exports that commit (``git archive``) into ``<venv>/release/``: the user's clone is never edited;
2. creates the venv with this interpreter and installs :data:`PINS` (the local torch CPU wheel,
   ``numpy<1.24`` which mmdet 2.25 needs, the release's runtime requirements);
3. compiles ``mmcv-full`` 1.6.0 (the newest the release's ``mmdet/__init__.py`` accepts) from its
   sdist with its CPU ops;
4. puts a stand-in ``torchvision`` in the venv (mmcv 1.x imports it for ``torchvision://`` URLs only;
   PyPI's CUDA torchvision does not import beside the CPU torch);
5. installs the release (``pip install -e``, its mmdet 2.25 fork) and compiles its GP/MST op
   (``GP_cuda``: host C++ behind ``.cu`` names) for the CPU.

Every edit the build makes to a file of the release or of mmcv is in :data:`EDITS`, applied as a
literal substitution that must match (a different release fails the build instead of building
something else). What was installed is recorded in ``<venv>/apro-original-env.json``; a venv whose
record is complete and matches this module's pins is reused. Nothing of the release is copied into
this repository.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from apro.errors import InputError, RunFailed

RELEASE_REPOSITORY = "https://github.com/CircleRadon/APro"
RELEASE_COMMIT = "8251a9ec1f4d53e030e43493b2db909f53e1990b"
#: files every checkout of the release has (a folder without them is not the release)
RELEASE_MARKERS = ("apro/apro.py", "apro/gp_cuda/gp.cpp", "mmdet/models/dense_heads/box_solov2_head.py",
                   "mmdet/models/dense_heads/box2mask_head.py", "configs/apro_boxsolov2", "configs/apro_box2mask")

#: the compiled mmcv the release asks for (``mmdet/__init__.py``: 1.3.17 <= mmcv <= 1.6.0), its sdist on PyPI
MMCV_SDIST = {
    "url": "https://files.pythonhosted.org/packages/17/bd/3cf61e29f3dcc80dfad9de055b1385d70d103b47586bd4e1051f1c2d035d/"
           "mmcv-full-1.6.0.tar.gz",
    "sha256": "2ac60fb2ff75ef93c53b68f10a095a4929d67aedbd95c02641e1e5258d12b874",
}
#: every other package of the venv, each pinned (pip constraints for every install step)
PINS: Dict[str, str] = {
    "torch": "2.13.0",          # the local CPU wheel; mmcv-full and the GP op compile against it
    "numpy": "1.23.5",          # mmdet 2.25 uses np.float / np.int (removed in numpy 1.24)
    "setuptools": "80.9.0",     # < 81: mmcv-full's setup.py needs pkg_resources
    "wheel": "0.45.1",
    "ninja": "1.13.0",
    "opencv-python": "4.11.0.86",  # the newest that takes numpy 1.x
    "yapf": "0.40.1",           # mmcv 1.x's Config passes verify= to FormatCode (gone in 0.40.2)
    "addict": "2.4.0",
    "packaging": "24.2",
    "pillow": "11.3.0",
    "pyyaml": "6.0.2",
    "scipy": "1.10.1",          # the release's SOLOv2 head: ndimage.center_of_mass; the last with numpy 1.23
    "matplotlib": "3.7.5",
    "pycocotools": "2.0.8",
    "six": "1.17.0",
    "terminaltables": "3.1.10",
}
#: (file, old text, new text, why) applied to the release's copy in <venv>/release and to mmcv's sdist
EDITS: List[Dict[str, str]] = [
    {"file": "mmcv:setup.py", "old": "extra_compile_args['cxx'] = ['-std=c++14']",
     "new": "extra_compile_args['cxx'] = ['-std=c++17']",
     "why": "torch 2.x headers need C++17 (mmcv 1.7 makes the same change for torch > 1.12)"},
]
for _cu in ("apro/gp_cuda/gp_process/gp_process.cu", "apro/gp_cuda/mst/mst.cu"):
    EDITS += [
        {"file": _cu, "old": "#include <ATen/cuda/CUDAContext.h>\n", "new": "",
         "why": "CPU build: the op's code is host C++; no CUDA headers"},
        {"file": _cu, "old": "#include <THC/THC.h>\n#include <THC/THCAtomics.cuh>\n#include <THC/THCDeviceUtils.cuh>\n",
         "new": "", "why": "THC is gone from torch 2.x (and unused by the host code)"},
        {"file": _cu, "old": ".data<", "new": ".data_ptr<", "count": "all",
         "why": "Tensor.data<T>() is gone from torch 2.x; data_ptr<T>() is the same pointer"},
    ]
EDITS += [
    {"file": "apro/gp_cuda/gp_process/gp_process.cu", "old": "auto edges_cpu = edges.cpu();",
     "new": "auto edges_cpu = edges.cpu().contiguous();",
     "why": "on a CPU tensor .cpu() is a no-op; the later .contiguous().data_ptr() of a non-contiguous "
            "input points into a temporary freed before it is read (a crash or wrong trees)"},
    {"file": "apro/gp_cuda/mst/mst.cu", "old": "auto edge_index_cpu   = edge_index_tensor.cpu();",
     "new": "auto edge_index_cpu   = edge_index_tensor.cpu().contiguous();",
     "why": "as above: the release's edge index comes from expand(), not contiguous"},
]
#: the stand-in torchvision: mmcv/runner/checkpoint.py imports it at module level
TORCHVISION_STUB = '"""Stand-in for torchvision in the release\'s venv (apro.crosscheck.original_env): mmcv 1.x ' \
                   'imports it only for torchvision:// checkpoint URLs, which the check never uses."""\n' \
                   '__version__ = "0.0.0+apro.stub"\n'
#: the GP/MST op: the release's sources (edited above) compiled as C++ into a module named GP_cuda
GP_SETUP = textwrap.dedent('''\
    # written by apro.crosscheck.original_env: the release's GP/MST op for the CPU
    import glob, os
    from setuptools import setup
    from torch.utils.cpp_extension import BuildExtension, CppExtension
    here = os.path.dirname(os.path.abspath(__file__))
    setup(name="release-gp-op", version="0.0", py_modules=[],
          ext_modules=[CppExtension("GP_cuda", sorted(glob.glob(os.path.join(here, "*.cpp"))),
                                    include_dirs=[here], extra_compile_args=["-O3"])],
          cmdclass={"build_ext": BuildExtension})
    ''')
RECORD = "apro-original-env.json"
#: imports that must work in the finished venv (PYTHONPATH=<venv>/release)
IMPORT_CHECK = ("import mmcv, mmcv.ops, mmdet, GP_cuda; from mmdet.models import build_detector; "
                "from apro.apro import Global_APro, Local_APro; from apro.gp_cuda.mst.mst import MinimumSpanningTree; "
                "import json, torch, numpy; print(json.dumps({'torch': torch.__version__, 'numpy': numpy.__version__, "
                "'mmcv': mmcv.__version__, 'mmdet': mmdet.__version__}))")


class OriginalEnvError(InputError):
    """A release checkout or venv that is not what the check needs (names the path and what was expected)."""


def _run(cmd: Sequence[str], what: str, cwd: Optional[Path] = None, env: Optional[dict] = None,
         log: Optional[Path] = None) -> str:
    """Runs ``cmd``; its output goes to ``log`` (or is returned); a failure names ``what`` and the log's tail."""
    print(f"apro original-env: {what}", file=sys.stderr, flush=True)
    full_env = {**os.environ, **(env or {})}
    if log is not None:
        with open(log, "a") as f:
            f.write(f"\n$ {' '.join(map(str, cmd))}\n")
            f.flush()
            proc = subprocess.run(list(map(str, cmd)), cwd=cwd, env=full_env, stdout=f, stderr=subprocess.STDOUT)
        out = ""
    else:
        proc = subprocess.run(list(map(str, cmd)), cwd=cwd, env=full_env, capture_output=True, text=True)
        out = proc.stdout
    if proc.returncode != 0:
        text = log.read_text() if log is not None else (proc.stderr or proc.stdout)
        tail = text.splitlines()[-25:]
        raise RunFailed(f"{what} failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n" + "\n".join(tail)
                        + (f"\n(full log: {log})" if log is not None else ""))
    return out


def check_release(path: os.PathLike, commit: str = RELEASE_COMMIT) -> Path:
    """``path`` as a git clone or mirror of the release holding ``commit``; raises :class:`OriginalEnvError`."""
    path = Path(path).resolve()
    if not path.exists():
        raise OriginalEnvError(f"--original {path}: no such folder (expected a git clone of {RELEASE_REPOSITORY})")
    probe = subprocess.run(["git", "-C", str(path), "rev-parse", "--git-dir"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise OriginalEnvError(f"--original {path}: not a git repository (expected a git clone of "
                               f"{RELEASE_REPOSITORY}, at or containing commit {commit[:7]})")
    has = subprocess.run(["git", "-C", str(path), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
    if has.returncode != 0:
        head = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        raise OriginalEnvError(f"--original {path}: commit {commit} is not in this repository (HEAD is "
                               f"{head.strip()[:12] or 'unknown'}); expected a clone of {RELEASE_REPOSITORY}")
    files = subprocess.run(["git", "-C", str(path), "ls-tree", "--name-only", commit, "--", "apro/apro.py",
                            "apro/gp_cuda/gp.cpp", "mmdet/models/dense_heads", "configs"],
                           capture_output=True, text=True).stdout.split()
    tops = {"apro/apro.py", "apro/gp_cuda/gp.cpp", "mmdet/models/dense_heads", "configs"}
    if not tops <= set(files):
        raise OriginalEnvError(f"--original {path}: commit {commit[:7]} lacks {sorted(tops - set(files))}; "
                               f"not the APro release")
    return path


def _export(repo: Path, commit: str, dest: Path) -> None:
    """``git archive`` of ``commit`` into ``dest`` (fresh)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    archive = dest.parent / "release.tar"
    _run(["git", "-C", str(repo), "archive", "--format=tar", "-o", str(archive), commit], f"export {commit[:7]}")
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()
    missing = [m for m in RELEASE_MARKERS if not (dest / m).exists()]
    if missing:
        raise OriginalEnvError(f"{repo} at {commit[:7]}: missing {missing}; not the APro release")


def apply_edits(root: Path, prefix: str = "") -> List[dict]:
    """Applies the :data:`EDITS` whose file starts with ``prefix`` (``mmcv:`` for mmcv's sdist) under ``root``."""
    applied = []
    for edit in EDITS:
        name = edit["file"]
        if prefix and not name.startswith(prefix) or not prefix and ":" in name:
            continue
        path = root / name[len(prefix):]
        text = path.read_text()
        n = text.count(edit["old"])
        if n == 0 or (edit.get("count") != "all" and n != 1):
            raise RunFailed(f"{path}: the edit '{edit['why']}' expects {edit['old']!r} "
                            f"{'at least once' if edit.get('count') == 'all' else 'exactly once'}, found {n} times; "
                            f"not the release (or mmcv) this build was written for")
        path.write_text(text.replace(edit["old"], edit["new"]))
        applied.append({**edit, "replaced": n})
    return applied


def _constraints(venv: Path) -> Path:
    path = venv / "apro-original-constraints.txt"
    path.write_text("".join(f"{k}=={v}\n" for k, v in PINS.items()))
    return path


def read_record(venv: os.PathLike) -> Optional[dict]:
    path = Path(venv) / RECORD
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def venv_python(venv: os.PathLike) -> Path:
    return Path(venv).resolve() / "bin" / "python"


def release_env(venv: os.PathLike) -> Dict[str, str]:
    """The environment variables a process of the release's venv needs (its ``apro`` package on the path)."""
    venv = Path(venv).resolve()
    return {"PYTHONPATH": str(venv / "release"), "PYTHONNOUSERSITE": "1"}


def check_venv(venv: os.PathLike, imports: bool = False) -> dict:
    """The record of a finished release venv (with ``imports``: the release's modules import in it);
    :class:`OriginalEnvError` naming the venv and what to run otherwise."""
    venv = Path(venv)
    record = read_record(venv)
    if record is None or not venv_python(venv).is_file():
        raise OriginalEnvError(f"{venv}: no release venv (expected {venv / RECORD}); build it with "
                               f"`make original-env ORIGINAL=<clone of {RELEASE_REPOSITORY}>`")
    if record.get("commit") != RELEASE_COMMIT or record.get("pins") != PINS or record.get("mmcv_sdist") != MMCV_SDIST:
        raise OriginalEnvError(f"{venv}: built for other pins or another commit ({record.get('commit', '?')[:7]}); "
                               f"rebuild it with `make original-env ORIGINAL=...`")
    if imports:
        proc = subprocess.run([str(venv_python(venv)), "-c", IMPORT_CHECK], capture_output=True, text=True,
                              env={**os.environ, **release_env(venv)})
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise OriginalEnvError(f"{venv}: the release does not import in this venv:\n{tail}\nrebuild it with "
                                   f"`make original-env ORIGINAL=... ` (apro original-env --force)")
    return record


def build(original: Optional[os.PathLike], venv: os.PathLike, jobs: int = 2, force: bool = False) -> dict:
    """Builds (or reuses) the release's venv at ``venv``; returns its record. A failing step is an
    :class:`OriginalEnvError` naming it, with its log's tail; the venv then has no record."""
    try:
        return _build(original, Path(venv).resolve(), jobs, force)
    except RunFailed as exc:
        raise OriginalEnvError(f"{venv}: building the release's venv failed: {exc}") from None


def _build(original: Optional[os.PathLike], venv: Path, jobs: int, force: bool) -> dict:
    if original is not None:
        check_release(original)
    if not force:
        try:
            record = check_venv(venv, imports=True)
            print(f"apro original-env: {venv} is up to date (release {RELEASE_COMMIT[:7]})", file=sys.stderr)
            return record
        except OriginalEnvError:
            pass
    started = time.time()
    if venv.exists():
        (venv / RECORD).unlink(missing_ok=True)  # a half-rebuilt venv never looks finished
    venv.mkdir(parents=True, exist_ok=True)
    log = venv / "apro-original-build.log"
    log.write_text(f"apro original-env build, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    if original is None:
        clone = venv / "clone"
        if not (clone / ".git").exists():
            _run(["git", "clone", "--quiet", RELEASE_REPOSITORY, str(clone)], f"clone {RELEASE_REPOSITORY}", log=log)
        original = clone
    repo = check_release(original)
    release = venv / "release"
    _export(repo, RELEASE_COMMIT, release)
    edits = apply_edits(release)

    py = venv_python(venv)
    if not py.is_file():
        _run([sys.executable, "-m", "venv", str(venv)], f"create {venv}", log=log)
    cons = _constraints(venv)
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-c", str(cons)]
    _run(pip + ["torch", "numpy", "setuptools", "wheel", "ninja"], "install torch, numpy and the build tools", log=log)

    # mmcv-full from its sdist, edited, compiled with its CPU ops (kept when a rebuild finds it compiled)
    from apro.downloads import fetch

    build_dir = venv / "build"
    sdist = build_dir / Path(MMCV_SDIST["url"]).name
    fetch(MMCV_SDIST["url"], sdist, MMCV_SDIST["sha256"], what="mmcv-full sdist")
    src = build_dir / "mmcv-full-1.6.0"
    if src.exists():
        shutil.rmtree(src)
    with tarfile.open(sdist) as tar:
        tar.extractall(build_dir, filter="data")
    edits += apply_edits(src, prefix="mmcv:")
    has_mmcv = subprocess.run([str(py), "-c", "import mmcv, mmcv.ops; assert mmcv.__version__ == '1.6.0'"],
                              capture_output=True).returncode == 0
    if has_mmcv:
        print("apro original-env: mmcv-full 1.6.0 with its ops is installed; kept", file=sys.stderr)
    else:
        ops_env = {"MMCV_WITH_OPS": "1", "FORCE_CUDA": "0", "MAX_JOBS": str(jobs), "CFLAGS": "-g0 -O3 -DNDEBUG -fwrapv"}
        _run(pip + ["--no-build-isolation", str(src)], "compile mmcv-full 1.6.0 with its CPU ops (about 8 minutes "
             "on 2 cores)", env=ops_env, log=log)
    _run(pip + [k for k in PINS if k not in ("torch", "setuptools", "wheel", "ninja")],
         "install the release's runtime requirements", log=log)

    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     "locate site-packages").strip())
    stub = site / "torchvision"
    stub.mkdir(exist_ok=True)
    (stub / "__init__.py").write_text(TORCHVISION_STUB + "from . import models  # noqa: F401,E402\n")
    (stub / "models").mkdir(exist_ok=True)
    (stub / "models" / "__init__.py").write_text('"""Empty: no torchvision model URLs in the release venv."""\n')

    _run(pip + ["--no-deps", "--no-build-isolation", "--use-pep517", "-e", str(release)],
         "install the release (its mmdet 2.25 fork)", log=log)
    gp_dir = build_dir / "gp_op"
    if gp_dir.exists():
        shutil.rmtree(gp_dir)
    gp_dir.mkdir(parents=True)
    gp_src = release / "apro" / "gp_cuda"
    for rel in ("gp.cpp", "gp_process/gp_process.cu", "mst/mst.cu", "mst/boruvka.cpp"):
        shutil.copy(gp_src / rel, gp_dir / (Path(rel).stem + ".cpp"))
    for rel in ("gp_process/gp_process.hpp", "mst/mst.hpp", "mst/boruvka.hpp"):
        (gp_dir / rel).parent.mkdir(exist_ok=True)
        shutil.copy(gp_src / rel, gp_dir / rel)  # gp.cpp includes "mst/mst.hpp", the others "mst.hpp"
        shutil.copy(gp_src / rel, gp_dir / Path(rel).name)
    (gp_dir / "setup.py").write_text(GP_SETUP)
    _run(pip + ["--no-build-isolation", "--no-deps", str(gp_dir)], "compile the release's GP/MST op for the CPU",
         env={"MAX_JOBS": str(jobs)}, log=log)

    versions = json.loads(_run([str(py), "-c", IMPORT_CHECK], "check the release imports",
                               env=release_env(venv)).strip().splitlines()[-1])
    record = {"commit": RELEASE_COMMIT, "repository": RELEASE_REPOSITORY, "source": str(repo), "pins": PINS,
              "mmcv_sdist": MMCV_SDIST, "versions": versions, "python": sys.version.split()[0],
              "edits": edits, "torchvision": "stand-in module (see TORCHVISION_STUB)",
              "built": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(time.time() - started)}
    from apro.io import write_json_atomic

    write_json_atomic(venv / RECORD, record)
    print(f"apro original-env: {venv} ready in {record['seconds']} s: {versions}", file=sys.stderr)
    return record
