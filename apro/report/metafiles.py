"""Model-zoo metafiles: one ``metafile.yml`` per entry of a suite, in mmdetection's metafile convention.

    apro report --suite paper --seeds 0,1,2   # also writes reports/paper/metafiles/<entry>/metafile.yml

An entry is an experiment of the reported suite with the paper's numbers (``paper:`` in
experiments/registry.yaml): the ten model-zoo rows of the ``paper`` and ``released`` suites. Its
metafile follows mmdetection's ``configs/<model>/metafile.yml`` (``Collections`` with their
``Metadata`` and ``Paper``; ``Models`` with ``In Collection``, ``Config``, ``Metadata``,
``Results``, ``Weights``): ``Results`` holds the paper's numbers, then this suite's mean over its
seeds ("not run" where there is none), and ``Reproduction`` what the suite measured: per metric
the runs' values per seed with n, mean and sample std, the difference to the paper and the verdict
(:data:`apro.stats.VERDICT_RULE`), and per run its status, checkpoint (first 8 hex of its sha256:
the training's final checkpoint, or the converted released checkpoint), the config's sha256 as
the run recorded it, the hardware (done.json), and wall time and peak memory of its training and
evaluation (the records the steps write of themselves, ``<output>.run.json``); also the seeds,
the git commit of the checkout (``git rev-parse HEAD``; "unknown" outside git) and the sha256 of
the config file now.

Each file is checked against ``apro/resources/metafile.schema.yaml`` (as it reads back) before
it is written, atomically; a violation raises :class:`MetafileError`. Needs pyyaml and
jsonschema, not torch.
"""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from apro import layout
from apro import registry as reg
from apro import resources
from apro import stats
from apro.io import file_sha256, write_text_atomic
from apro.report.collect import METRICS, ReportError, _num, read_json, read_record
PAPER = {"URL": "https://arxiv.org/abs/2310.10533", "Title": "Label-efficient Segmentation via Affinity Propagation"}
#: the metafile's metric names (mmdetection's) of results.csv's columns
METRIC_NAMES = {"AP": "mask AP", "AP50": "mask AP50", "AP75": "mask AP75", "mIoU": "mIoU"}
DATASET_NAMES = {"voc": "Pascal VOC 2012 (SBD-augmented)", "voc_aug": "Pascal VOC 2012 (SBD-augmented)",
                 "coco": "COCO 2017"}
#: why a value is missing (the schema's ``absent``)
NOT_RUN, NOT_RECORDED, NOT_RELEASED, NOT_TRAINED = ("not run", "not recorded", "not released",
                                                    "not trained (released checkpoint)")
SINGLE_RUN = "single run"
HEADER = """\
# Model-zoo entry {name} of suite {suite}, written by `apro report` (apro/report/metafiles.py) in
# mmdetection's metafile convention; schema: apro/resources/metafile.schema.yaml.
# Results: the paper's numbers, then this suite's mean over seeds {seeds}. Reproduction: per seed.
# Training Memory (GB): the peak resident memory of the training step (host RAM, as the step
# recorded it), not GPU memory as in mmdetection's model zoo.
"""


class MetafileError(ReportError):
    """A metafile that does not match apro/resources/metafile.schema.yaml (a bug of the writer)."""


# ---------------------------------------------------------------- what the entries are

def entries(registry: reg.Registry, suite: str) -> List[reg.Experiment]:
    """The model-zoo entries of ``suite``: its experiments with the paper's numbers."""
    return [e for e in registry.experiments_in(suite) if any(v is not None for v in (e.paper or {}).values())]


def git_commit(root: Path = reg.REPO_ROOT) -> str:
    """``git rev-parse HEAD`` of the checkout at ``root``; "unknown" outside git (or without git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else "unknown"


@functools.lru_cache(maxsize=None)
def _sha256_prefix(path: str, size: int, mtime: int) -> str:
    return file_sha256(path)[:8]


def sha256_prefix(path: Path, absent: str = NOT_RUN) -> str:
    """The first 8 hex of a file's sha256 (read once per file and version), else ``absent``."""
    if not path.is_file():
        return absent
    st = path.stat()
    return _sha256_prefix(str(path.resolve()), st.st_size, st.st_mtime_ns)


def _metric_names(exp: reg.Experiment) -> List[str]:
    return ["mIoU"] if exp.task == "semantic" else list(METRICS)


def _r(value: Optional[float]) -> Any:
    return NOT_RUN if value is None else round(float(value), 3)


def _job(root: Path, output: str, ran: bool) -> Any:
    """Wall time and peak memory of one step, as its record holds them (``apro.layout.run_record``); ``ran``:
    whether its output is there (a step that ran without writing a record: "not recorded")."""
    record = read_record(root, output)
    if record is None:
        return NOT_RECORDED if ran else NOT_RUN
    wall, rss = _num(record.get("wall_s")), _num(record.get("peak_rss_mb"))
    if wall is None:
        return NOT_RECORDED
    return {"Wall Time (s)": round(wall, 1), "Peak Memory (MB)": NOT_RECORDED if rss is None else round(rss, 1),
            "Source": Path(layout.run_record(output)).name}


def _checkpoint(root: Path, done: Optional[dict]) -> str:
    """The first 8 hex of the final checkpoint a training's done.json names: the sha256 it recorded when
    it finished (no read of a paper-size checkpoint per report), else hashed here."""
    if done is None:
        return NOT_RUN
    if isinstance(done.get("checkpoint_sha256"), str) and len(done["checkpoint_sha256"]) == 64:
        return done["checkpoint_sha256"][:8]
    name = done.get("checkpoint")
    if not isinstance(name, str) or not name:
        return NOT_RECORDED
    path = Path(name) if Path(name).is_absolute() else root / name
    return sha256_prefix(path, NOT_RECORDED)


def run_record(registry: reg.Registry, suite: str, exp: reg.Experiment, row: Dict[str, Any],
               root: Path) -> Dict[str, Any]:
    """One run (a row of :func:`apro.report.collect`) as the metafile's ``Runs`` item."""
    seed, released = row["seed"], registry.suite(suite).checkpoints == "released"
    metrics, _ = read_json(root / layout.metrics_file(suite, exp.name, seed))
    done = None if released else read_json(root / layout.done_file(suite, exp.name, seed))[0]
    if released:
        checkpoint = sha256_prefix(root / layout.converted_checkpoint(suite, exp.name))
    else:
        checkpoint = _checkpoint(root, done)
    config_sha = next((r["config_sha256"] for r in (done, metrics) if r and isinstance(r.get("config_sha256"), str)),
                      None)
    hardware = (done or {}).get("hardware")
    if not isinstance(hardware, dict):
        hardware = NOT_RUN if done is None and metrics is None else NOT_RECORDED
    return {
        "Seed": seed,
        "Status": row["status"],
        "Metrics": {METRIC_NAMES[m]: _r(row[m]) for m in _metric_names(exp)},
        "Checkpoint SHA256": checkpoint,
        "Config SHA256": config_sha or (NOT_RUN if done is None and metrics is None else NOT_RECORDED),
        "Hardware": hardware,
        "Train": NOT_TRAINED if released else _job(root, layout.work_dir(suite, exp.name, seed), done is not None),
        "Evaluate": _job(root, layout.metrics_file(suite, exp.name, seed), metrics is not None),
    }


def _summary(values: Dict[int, Optional[float]]) -> Dict[str, Any]:
    s = stats.summarize(list(values.values()))
    std = s["std"] if s["std"] is not None else (SINGLE_RUN if s["n"] == 1 else NOT_RUN)
    return {"n": s["n"], "mean": _r(s["mean"]), "std": std if isinstance(std, str) else round(std, 3),
            "Per Seed": [{"Seed": k, "Value": _r(v)} for k, v in values.items()]}


def _resources(exp: reg.Experiment, runs: List[Dict[str, Any]], released: bool) -> str:
    """The hardware the runs recorded (distinct, in order), else what the registry plans."""
    seen = []
    for r in runs:
        hw = r["Hardware"]
        if isinstance(hw, dict):
            gpus = hw.get("gpus") or []
            text = f"{len(gpus)}x {gpus[0]}" if gpus else f"{hw.get('cores')} CPU cores ({hw.get('cpu', 'unknown')})"
            if text not in seen:
                seen.append(text)
    if seen:
        return "; ".join(seen)
    if released:
        return "released checkpoint: " + (f"{exp.gpus} GPUs in the release" if exp.gpus else "trained by the release")
    return (f"{exp.gpus} GPUs (planned; no run recorded)" if exp.gpus else "CPU (planned; no run recorded)")


def _techniques(exp: reg.Experiment) -> List[str]:
    parts = exp.variant.split("+")
    out = {"box": ["box supervision (projection loss)"], "point": ["point supervision (partial cross-entropy)"],
           "scribble": ["scribble supervision (partial cross-entropy)"], "mask": ["mask supervision"],
           "full": ["dense supervision"]}.get(parts[0], [parts[0]])
    out += ["global affinity propagation (GP)"] if "gp" in parts else []
    out += ["local affinity propagation (LP)"] if "lp" in parts else []
    return out


def metafile_data(registry: reg.Registry, suite: str, exp: reg.Experiment, rows: List[Dict[str, Any]],
                  root: Path, seeds: Sequence[int], commit: str) -> Dict[str, Any]:
    """The metafile of one entry: ``rows`` are its runs (rows of :func:`apro.report.collect`, any order)."""
    from apro.weights import WEIGHTS

    released = registry.suite(suite).checkpoints == "released"
    mine = sorted((r for r in rows if r["experiment"] == exp.name), key=lambda r: list(seeds).index(r["seed"]))
    runs = [run_record(registry, suite, exp, r, root) for r in mine]
    names = _metric_names(exp)
    values = {m: {r["seed"]: r[m] for r in mine} for m in names}
    reproduced = {METRIC_NAMES[m]: _summary(values[m]) for m in names}
    paper = {METRIC_NAMES[m]: _r(_num((exp.paper or {}).get(m))) for m in names}
    main = names[0]
    diff = {}
    for m in names:
        mean, p = reproduced[METRIC_NAMES[m]]["mean"], paper[METRIC_NAMES[m]]
        diff[METRIC_NAMES[m]] = round(mean - p, 3) if not isinstance(mean, str) and not isinstance(p, str) else NOT_RUN
    task = "Semantic Segmentation" if exp.task == "semantic" else "Instance Segmentation"
    dataset = registry.effective_dataset(suite, exp).name
    shown = DATASET_NAMES.get(dataset, dataset)
    trained = [r["Train"] for r in runs if isinstance(r["Train"], dict)
               and not isinstance(r["Train"]["Peak Memory (MB)"], str)]
    memory = round(max(t["Peak Memory (MB)"] for t in trained) / 1024, 2) if trained else \
        (NOT_TRAINED if released else NOT_RUN)
    config = exp.config_path(registry.root)
    collection = f"APro {exp.framework}"
    n = reproduced[METRIC_NAMES[main]]["n"]
    metadata: Dict[str, Any] = {"Training Memory (GB)": memory, "Training Resources": _resources(exp, runs, released),
                                "Training Data": shown}
    max_iters = registry.effective_max_iters(suite, exp)
    if max_iters:
        metadata["Iterations"] = int(max_iters)
    elif exp.epochs:
        metadata["Epochs"] = int(exp.epochs)
    elif exp.iters:
        metadata["Iterations"] = int(exp.iters)
    model: Dict[str, Any] = {
        "Name": exp.name,
        "In Collection": collection,
        "Config": exp.config or NOT_RECORDED,
        "Metadata": metadata,
        "Results": [
            {"Task": task, "Dataset": shown, "Metrics": paper, "Source": "paper (the APro release's model zoo)"},
            {"Task": task, "Dataset": shown, "Metrics": {k: v["mean"] for k, v in reproduced.items()},
             "Source": f"suite {suite}: mean over {n} of {len(mine)} runs (seeds {', '.join(map(str, seeds))})"},
        ],
        "Weights": WEIGHTS.get(exp.released or "", {}).get("url") or NOT_RELEASED,
        "Reproduction": {
            "Suite": suite,
            "Seeds": [int(k) for k in seeds],
            "Git Commit": commit,
            "Config SHA256": file_sha256(config) if config is not None and config.is_file() else NOT_RECORDED,
            "Paper": paper,
            "Reproduced": reproduced,
            "Difference": diff,
            "Verdict": stats.verdict(_num((exp.paper or {}).get(main)), list(values[main].values())),
            "Verdict Rule": stats.VERDICT_RULE,
            "Runs": runs,
        },
    }
    if mine and mine[0]["released_status"] is not None and not released:
        released_suite = next(s.name for s in registry.suites.values() if s.checkpoints == "released")
        model["Reproduction"]["Released Checkpoint"] = {
            "Suite": released_suite, "Status": mine[0]["released_status"],
            "Metrics": {METRIC_NAMES[m]: _r(mine[0][f"released_{m}"]) for m in METRICS},
            "Checkpoint SHA256": sha256_prefix(root / layout.converted_checkpoint(released_suite, exp.name))}
    return {
        "Collections": [{"Name": collection,
                         "Metadata": {"Training Data": shown, "Training Techniques": _techniques(exp),
                                      "Architecture": [exp.framework, exp.backbone]},
                         "Paper": dict(PAPER), "README": "README.md"}],
        "Models": [model],
    }


# ---------------------------------------------------------------- checking and writing

@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = resources.schema("metafile")
    return jsonschema.validators.validator_for(schema)(schema)


def validate(data: Any, where: str = "metafile") -> None:
    """Raises :class:`MetafileError` (naming ``where`` and each violation) unless ``data`` matches the schema."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  - at {'/'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}"
                 for e in errors[:10]]
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise MetafileError(f"{where}: does not match the metafile schema {resources.schema_name('metafile')}:\n" + "\n".join(lines)
                            + more)


def render(data: Dict[str, Any], name: str, suite: str, seeds: Sequence[int]) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):  # every value written out, no &anchors / *aliases
        def ignore_aliases(self, data):
            return True

    body = yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False)
    return HEADER.format(name=name, suite=suite, seeds=", ".join(map(str, seeds))) + body


def write_metafiles(registry: reg.Registry, suite: str, rows: List[Dict[str, Any]], root: Path, out: Path,
                    seeds: Sequence[int]) -> Path:
    """``<out>/metafiles/<entry>/metafile.yml`` for every entry of ``suite`` (``rows``: :func:`apro.report.collect`
    of its runs), each validated, then written atomically; the folder is made even without entries, and
    the metafiles of entries no longer in the suite are removed. Returns the folder."""
    import yaml

    rel = lambda path: out / Path(path).relative_to(layout.report_dir(suite))  # noqa: E731
    folder = rel(layout.metafiles_dir(suite))
    folder.mkdir(parents=True, exist_ok=True)
    zoo = entries(registry, suite)
    commit = git_commit() if zoo else "unknown"
    for exp in zoo:
        path = rel(layout.metafile(suite, exp.name))
        text = render(metafile_data(registry, suite, exp, rows, root, seeds, commit), exp.name, suite, seeds)
        validate(yaml.safe_load(text), str(path))
        write_text_atomic(path, text)
    names = {e.name for e in zoo}
    for child in sorted(folder.iterdir()):
        stale = child / Path(layout.metafile(suite, child.name)).name
        if child.is_dir() and child.name not in names and stale.is_file():
            stale.unlink()
            if not any(child.iterdir()):
                child.rmdir()
    return folder
