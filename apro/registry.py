"""The experiment registry (``experiments/registry.yaml``): what to run.

One YAML file lists the datasets, the suites and every experiment (the
paper's model zoo with its reported numbers, the demo variants, ...) under one
schema, ``apro/resources/registry.schema.yaml`` (package data). This module reads it,
validates it (the schema, then what a schema cannot say: unique names, suites
and datasets that exist, config files on disk) and answers the questions of
the workflow and the CLI:

    >>> reg = load_registry()
    >>> [e.name for e in reg.experiments_in("demo")]
    ['box', 'box_lp', 'box_gp', 'box_gp_lp', 'mask']
    >>> job = reg.job("smoke", "box", seed=1)   # a run: (suite, experiment) and its training seed
    >>> job.metrics, job.max_iters
    ('results/smoke/box/seed1/metrics.json', 5)

Unknown suites and experiments raise :class:`RegistryError` naming the known
ones; asking to run a suite that cannot run yet (no config, no data) raises a
:class:`RegistryError` listing what is missing.

Output layout (paths relative to the workflow's working directory):

    data/<dataset>/                             the dataset (train/, val/, annotations/)
    results/data/<dataset>/validated.json       the annotation check of the dataset
    results/<suite>/<experiment>/seed<k>/train/         the work dir of seed k's training (done.json)
    results/<suite>/<experiment>/seed<k>/metrics.json   mask AP, AP50, AP75 or mIoU (apro evaluate)
    results/logs/..., results/benchmarks/...    one log and one Snakemake benchmark per job
    reports/<suite>/results.csv, summary.md, summary.html

Nothing here imports torch, mmdet or Snakemake.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

from apro.errors import InputError

#: the checkout this package lives in, when it is installed from one (``pip install -e``)
REPO_ROOT = Path(__file__).resolve().parent.parent
#: where the registry is, relative to the folder the suite runs in (its root: configs are relative to it)
REGISTRY_IN_ROOT = Path("experiments") / "registry.yaml"
DEFAULT_REGISTRY = REPO_ROOT / REGISTRY_IN_ROOT

#: the variant whose gain over ``BASELINE_VARIANT`` is "the APro gain"
APRO_VARIANT = "box+gp+lp"
BASELINE_VARIANT = "box"

__all__ = ["RegistryError", "Dataset", "Suite", "Experiment", "Job", "Registry", "load_registry",
           "parse_names", "parse_seeds", "REPO_ROOT", "DEFAULT_REGISTRY", "APRO_VARIANT", "BASELINE_VARIANT", "TASKS",
           "data_dir", "validated_marker", "experiment_dir", "work_dir", "done_file", "metrics_file",
           "log_file", "benchmark_file", "report_dir", "report_files", "config_files"]


class RegistryError(InputError):
    """A bad registry, or a request for an unknown / not runnable suite or experiment."""


# ---------------------------------------------------------------- output layout: apro.layout, the one place
from apro.layout import (benchmark_file, converted_checkpoint, data_dir, done_file, experiment_dir,  # noqa: E402,F401
                         log_file, metrics_file, report_dir, report_files, run_record, semantic_label_root,
                         sparse_labels_dir, validated_marker, work_dir)


# ---------------------------------------------------------------- entries

@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # "synthetic" (apro make-data), "download" (workflow/rules/data.smk) or "external" (by hand)
    description: str
    num_train: Optional[int] = None
    num_val: Optional[int] = None
    image_size: Optional[int] = None
    seed: Optional[int] = None
    class_hue_width: Optional[float] = None  # synthetic only: colour hints at the class (apro.data.synthetic)
    layout: str = "coco"  # "coco": COCO instance json (validated); "semantic": labels/ inside, no instances
    root: Optional[str] = None  # an external dataset's folder when not data/<name>/ (the custom suite's)

    @property
    def path(self) -> str:
        return self.root if self.root is not None else data_dir(self.name)

    @property
    def has_coco_instances(self) -> bool:
        """Whether it holds COCO instance json (checked by ``apro validate-data``, read by make-sparse-labels)."""
        return self.layout == "coco"

    @property
    def label_root(self) -> str:
        """The ``--label-root`` of the semantic experiments on it."""
        return semantic_label_root(self.name) if self.layout == "semantic" else sparse_labels_dir(self.name)

    def missing_files(self, base: Union[str, os.PathLike] = ".") -> List[str]:
        """For an external dataset, the files under ``base`` it still lacks (synthetic ones are generated)."""
        if self.kind in ("synthetic", "download"):  # written by the workflow's own rules
            return []
        want = [f"{self.path}/annotations/instances_{s}.json" for s in ("train", "val")]
        return [p for p in want if not (Path(base) / p).is_file()]


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    description: str
    overrides: Mapping[str, Any]
    checkpoints: Optional[str] = None  # "released": evaluate the release's checkpoints, train nothing
    compare: Optional[str] = None  # "release": apro crosscheck of every member; no data, no training


#: the two tasks of the suite: instance segmentation (mmdet, mask AP), semantic segmentation (mmseg, mIoU)
TASKS = ("instance", "semantic")


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    suites: tuple
    task: str  # "instance" or "semantic" (TASKS): the one notion of what an experiment does
    framework: str
    backbone: str
    dataset: str
    supervision: str
    variant: str
    config: Optional[str]
    paper: Optional[Mapping[str, Optional[float]]]
    epochs: Optional[int] = None
    iters: Optional[int] = None
    init_from: Optional[str] = None  # an experiment whose final checkpoint starts this one
    threads: Optional[int] = None  # CPU threads of its training (None: the workflow's default)
    gpus: Optional[int] = None  # GPUs of one training (one node; torchrun for several); None: a CPU experiment
    released: Optional[str] = None  # the APro release's checkpoint (a weights/ file, apro/weights.py)
    notes: str = ""

    def config_path(self, root: Union[str, os.PathLike] = REPO_ROOT) -> Optional[Path]:
        """The config file, relative paths taken from the repository root; None if not set."""
        if self.config is None:
            return None
        p = Path(self.config)
        return p if p.is_absolute() else Path(root) / p

    @property
    def schedule(self) -> str:
        return f"{self.epochs} epochs" if self.epochs else f"{self.iters} iters"


@dataclasses.dataclass(frozen=True)
class Job:
    """One run: an experiment of one suite, with the suite's overrides applied, and its training seed."""
    suite: str
    experiment: Experiment
    dataset: Dataset
    config: Path  # absolute
    max_iters: Optional[int]  # None: the config's own schedule
    released: Optional[str] = None  # suites of the release's checkpoints: its weights/ file (nothing is trained)
    seed: int = 0

    def with_seed(self, seed: int) -> "Job":
        return dataclasses.replace(self, seed=int(seed))

    @property
    def name(self) -> str:
        return self.experiment.name

    @property
    def data_root(self) -> str:
        return self.dataset.path

    @property
    def work_dir(self) -> str:
        return work_dir(self.suite, self.name, self.seed)

    @property
    def done(self) -> str:
        return done_file(self.suite, self.name, self.seed)

    @property
    def metrics(self) -> str:
        return metrics_file(self.suite, self.name, self.seed)

    @property
    def init_done(self) -> Optional[str]:
        """The done.json of the run (same suite, same seed) whose checkpoint starts this one, or None."""
        init_from = self.experiment.init_from
        return None if init_from is None else done_file(self.suite, init_from, self.seed)

    @property
    def checkpoint(self) -> Optional[str]:
        """What ``apro evaluate`` reads: the converted release checkpoint, or None (the trained work dir)."""
        return converted_checkpoint(self.suite, self.name) if self.released else None


def parse_names(value: Union[None, str, Iterable[str]]) -> Optional[List[str]]:
    """``None`` / ``"a,b"`` / ``["a", "b"]`` -> None or a list of names (empty strings dropped)."""
    if value is None:
        return None
    if isinstance(value, str):
        items = value.split(",")
    else:
        items = [str(v) for v in value]
    names = [s.strip() for s in items if str(s).strip()]
    return names or None


def parse_seeds(value: Union[int, str, Iterable[int]]) -> List[int]:
    """``0`` / ``"0,1,2"`` / ``[0, 1, 2]`` -> the training seeds, in the order given (duplicates dropped)."""
    items = value.split(",") if isinstance(value, str) else [value] if isinstance(value, int) else list(value)
    seeds: List[int] = []
    for item in items:
        try:
            seed = int(str(item).strip())
        except ValueError:
            raise RegistryError(f"seeds: {item!r} is not a seed; expected non-negative integers, e.g. 0,1,2") from None
        if seed < 0:
            raise RegistryError(f"seeds: {seed} is negative; expected non-negative integers")
        if seed not in seeds:
            seeds.append(seed)
    if not seeds:
        raise RegistryError("seeds: expected at least one seed, e.g. 0 or 0,1,2")
    return seeds


def _known(kind: str, names: Iterable[str]) -> str:
    names = list(names)
    return f"known {kind}: {', '.join(names)}" if names else f"no {kind} defined"


# ---------------------------------------------------------------- the registry

class Registry:
    """The parsed, validated registry. Build it with :func:`load_registry`."""

    def __init__(self, data: Mapping[str, Any], path: Union[str, os.PathLike] = "<registry>",
                 root: Union[str, os.PathLike] = REPO_ROOT, check_configs: bool = True):
        """``root``: the folder relative config paths start from."""
        self.path = str(path)
        self.root = Path(root)
        _validate_schema(data, self.path)
        self.datasets: Dict[str, Dataset] = {
            name: Dataset(name=name, **spec) for name, spec in data["datasets"].items()}
        self.suites: Dict[str, Suite] = {
            name: Suite(name=name, description=" ".join(spec["description"].split()),
                        overrides=dict(spec.get("overrides") or {}), checkpoints=spec.get("checkpoints"),
                        compare=spec.get("compare"))
            for name, spec in data["suites"].items()}
        self.experiments: Dict[str, Experiment] = {}
        for i, entry in enumerate(data["experiments"]):
            where = f"{self.path}: experiments[{i}] ({entry['name']})"
            if entry["name"] in self.experiments:
                raise RegistryError(f"{where}: the name is used twice; experiment names must be unique")
            for s in entry["suites"]:
                if s not in self.suites:
                    raise RegistryError(f"{where}: suite {s!r} is not defined under 'suites'; "
                                        f"{_known('suites', self.suites)}")
            if entry["dataset"] not in self.datasets:
                raise RegistryError(f"{where}: dataset {entry['dataset']!r} is not defined under 'datasets'; "
                                    f"{_known('datasets', self.datasets)}")
            exp = Experiment(**{**entry, "suites": tuple(entry["suites"])})
            if check_configs and exp.config is not None and not exp.config_path(self.root).is_file():
                raise RegistryError(f"{where}: config {exp.config} does not exist "
                                    f"(looked for {exp.config_path(self.root)}); fix the path or set config: null")
            self.experiments[exp.name] = exp
        for exp in self.experiments.values():
            if exp.init_from is None:
                continue
            where = f"{self.path}: experiment {exp.name}: init_from {exp.init_from!r}"
            base = self.experiments.get(exp.init_from)
            if base is None:
                raise RegistryError(f"{where} is not an experiment; {_known('experiments', self.experiments)}")
            if base.init_from is not None or base.name == exp.name:
                raise RegistryError(f"{where}: a starting point must be trained from scratch (no init_from)")
            outside = [s for s in exp.suites if s not in base.suites]
            if outside:
                raise RegistryError(f"{where} is not in suite(s) {', '.join(outside)} of this experiment")
        self.ablations: List[dict] = [
            {**g, "rows": [{"experiment": r["experiment"], "value": str(r["value"])} for r in g["rows"]]}
            for g in data.get("ablations") or []]
        for g in self.ablations:
            unknown = [r["experiment"] for r in g["rows"] if r["experiment"] not in self.experiments]
            if unknown:
                raise RegistryError(f"{self.path}: ablation group {g['name']!r}: {', '.join(unknown)} not experiments "
                                    f"of the registry")
        for name, suite in self.suites.items():
            if suite.checkpoints == "released":
                without = [e.name for e in self.experiments.values() if name in e.suites and e.released is None]
                if without:
                    raise RegistryError(f"{self.path}: suite {name} evaluates the release's checkpoints, but "
                                        f"{', '.join(without)} name none (set `released: released/<file>.pth`)")
            ds = suite.overrides.get("dataset")
            if ds is not None and ds not in self.datasets:
                raise RegistryError(f"{self.path}: suites.{name}.overrides.dataset {ds!r} is not defined under "
                                    f"'datasets'; {_known('datasets', self.datasets)}")

    # -- look-ups that name the known entries on failure
    def suite(self, name: str) -> Suite:
        if name not in self.suites:
            raise RegistryError(f"unknown suite {name!r} in {self.path}; {_known('suites', self.suites)}")
        return self.suites[name]

    def experiment(self, name: str) -> Experiment:
        if name not in self.experiments:
            raise RegistryError(f"unknown experiment {name!r} in {self.path}; "
                                f"{_known('experiments', self.experiments)}")
        return self.experiments[name]

    def experiments_in(self, suite: str) -> List[Experiment]:
        self.suite(suite)
        return [e for e in self.experiments.values() if suite in e.suites]

    def select(self, suite: str, names: Union[None, str, Iterable[str]] = None) -> List[Experiment]:
        """The experiments of ``suite``, or only ``names`` of them (in registry order)."""
        members = self.experiments_in(suite)
        wanted = parse_names(names)
        if wanted is None:
            return members
        by_name = {e.name: e for e in members}
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            raise RegistryError(f"experiment(s) {', '.join(unknown)} not in suite {suite!r} of {self.path}; "
                                f"{_known(f'experiments of {suite}', by_name)}")
        return [e for e in members if e.name in wanted]

    def effective_dataset(self, suite: str, experiment: Experiment) -> Dataset:
        return self.datasets[self.suite(suite).overrides.get("dataset", experiment.dataset)]

    def effective_max_iters(self, suite: str, experiment: Experiment) -> Optional[int]:
        return self.suite(suite).overrides.get("max_iters")

    def missing(self, suite: str, experiment: Experiment, base: Union[str, os.PathLike] = ".") -> List[str]:
        """Why ``experiment`` cannot run in ``suite`` (empty: it can)."""
        why = []
        if experiment.config is None:
            why.append("no config yet (config: null)")
        if self.suite(suite).compare:  # the check brings its own batch
            return why
        ds = self.effective_dataset(suite, experiment)
        files = ds.missing_files(base)
        if files:
            why.append(f"dataset {ds.name!r} ({ds.kind}) not prepared: missing {', '.join(files)}")
        return why

    def runnable_suites(self, base: Union[str, os.PathLike] = ".") -> List[str]:
        return [s for s in self.suites
                if self.experiments_in(s) and not any(self.missing(s, e, base) for e in self.experiments_in(s))]

    def jobs(self, suite: str, names: Union[None, str, Iterable[str]] = None,
             base: Union[str, os.PathLike] = ".", seed: int = 0) -> List[Job]:
        """The runnable jobs of ``suite`` (or of ``names`` in it) with training seed ``seed``; raises if any of
        them cannot run."""
        selected = self.select(suite, names)
        if not selected:
            raise RegistryError(f"suite {suite!r} of {self.path} has no experiments")
        reasons: Dict[str, List[str]] = {}  # reason -> experiments
        for e in selected:
            for why in self.missing(suite, e, base):
                reasons.setdefault(why, []).append(e.name)
        if reasons:
            lines = "\n".join(f"  - {why}; affects {', '.join(names)}" for why, names in reasons.items())
            n_bad = len({n for names in reasons.values() for n in names})
            others = [s for s in self.runnable_suites(base) if s != suite]
            raise RegistryError(
                f"suite {suite!r} is not runnable yet: {n_bad} of its {len(selected)} experiment(s) cannot run:\n"
                f"{lines}\nrunnable suites: {', '.join(others) if others else 'none'}")
        return [self._job(suite, e).with_seed(seed) for e in selected]

    def job(self, suite: str, name: str, base: Union[str, os.PathLike] = ".", seed: int = 0) -> Job:
        return self.jobs(suite, [name], base, seed)[0]

    def _job(self, suite: str, e: Experiment) -> Job:
        return Job(suite=suite, experiment=e, dataset=self.effective_dataset(suite, e),
                   config=e.config_path(self.root).resolve(), max_iters=self.effective_max_iters(suite, e),
                   released=e.released if self.suites[suite].checkpoints == "released" else None)

    def datasets_of(self, suite: str) -> List[Dataset]:
        seen: Dict[str, Dataset] = {}
        for e in self.experiments_in(suite):
            ds = self.effective_dataset(suite, e)
            seen.setdefault(ds.name, ds)
        return list(seen.values())


def config_files(config: Union[str, os.PathLike]) -> List[Path]:
    """An mmdet config and the local files it inherits (``_base_``, recursively), for rerun checks.

    Bases of other packages (``mmdet::...``) are skipped; so is anything that cannot be parsed.
    """
    import ast

    out: List[Path] = []
    todo = [Path(config).resolve()]
    while todo:
        path = todo.pop()
        if path in out or not path.is_file():
            continue
        out.append(path)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_base_" for t in node.targets):
                try:
                    value = ast.literal_eval(node.value)
                except ValueError:
                    continue
                for base in [value] if isinstance(value, str) else list(value):
                    if isinstance(base, str) and "::" not in base:
                        todo.append((path.parent / base).resolve())
    return out


def _validate_schema(data: Any, path: str) -> None:
    import jsonschema

    from apro import resources

    schema = resources.schema("registry")
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors[:10]:
            where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
            lines.append(f"  - at {where}: {err.message}")
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise RegistryError(f"{path}: does not match the registry schema {resources.schema_name('registry')}:\n"
                            + "\n".join(lines) + more)


def default_registry() -> Path:
    """``experiments/registry.yaml`` of the folder the suite runs in, else of the checkout this package is
    installed from (an installed wheel outside a checkout has none: pass ``--registry``)."""
    here = Path.cwd() / REGISTRY_IN_ROOT
    return here if here.is_file() else DEFAULT_REGISTRY


def load_registry(path: Union[None, str, os.PathLike] = None, root: Union[None, str, os.PathLike] = None,
                  check_configs: bool = True) -> Registry:
    """Reads and validates the registry (default :func:`default_registry`).

    Relative config paths are taken from ``root`` (default: the folder holding the registry's folder, the
    root of ``experiments/registry.yaml``).
    """
    import yaml

    p = Path(path) if path is not None else default_registry()
    if not p.is_absolute() and not p.exists() and (REPO_ROOT / p).exists():
        p = REPO_ROOT / p
    if not p.is_file():
        raise RegistryError(f"{p}: registry file not found (expected a YAML file like experiments/registry.yaml; "
                            f"pass --registry)")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RegistryError(f"{p}: not valid YAML ({exc})") from exc
    return Registry(data if data is not None else {}, path=p,
                    root=root if root is not None else p.resolve().parent.parent, check_configs=check_configs)
