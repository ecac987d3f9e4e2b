"""Seconds per training iteration of demo experiments, and the share of APro's ops in them.

    python benchmarks/demo_step.py [--experiments sem_point sem_point_gp_lp box box_gp_lp]
                                   [--iters 20] [--warmup 5] [--threads 1]
                                   [--out reports/benchmarks/demo_step.csv]

For each registry experiment of the demo suite: builds its training exactly as ``apro train``
does (config, data, labels; random initial weights: a step costs the same from scratch), runs
``--warmup`` iterations, times ``--iters`` more (median seconds per iteration, the step of
mmengine's ``train_step``: data loading, forward, losses, backward, optimiser), then profiles
``--profiled`` more for the share of the spanning tree, GP, LP and the tree filter (the ``apro.*``
labels of :mod:`apro.ops`, or the compiled ops' own ``apro::*`` events in older code). The shares
are the robust figure on a noisy machine: both parts of each ratio come from the same steps.
Needs the demo data (``snakemake --cores 2 --config suite=demo`` makes it, or ``apro make-data``
/ ``apro make-sparse-labels``). Writes ``--out`` and ``<out>.md``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from apro import registry as reg  # noqa: E402
from apro import runs  # noqa: E402
from apro.io import write_text_atomic  # noqa: E402
from apro.ops import PROFILER_LABELS, seconds_in_ops  # noqa: E402

COLUMNS = ["experiment", "threads", "sec_per_iter", "tree_pct", "gp_pct", "lp_pct", "tree_filter_pct", "machine"]


def measure(experiment: str, iters: int, warmup: int, profiled: int, suite: str = "demo") -> Dict[str, float]:
    """Median seconds per iteration of ``experiment`` (of ``suite``) and its ops' shares (percent)."""
    from mmengine.runner import Runner
    from torch.profiler import ProfilerActivity, profile

    job = reg.load_registry().job(suite, experiment)
    label_root = job.dataset.label_root if job.experiment.task == "semantic" else None
    cfg = runs.load_config(str(job.config), str(job.data_root), 0, label_root=label_root)
    runs.set_max_iters(cfg, warmup + iters + profiled)
    with tempfile.TemporaryDirectory(prefix="demo_step_") as work:
        cfg.work_dir = work
        cfg.default_hooks.pop("checkpoint", None)  # nothing to keep
        # mmengine keeps one visualizer per name for the process: a fresh one writes into this run's dir
        cfg.experiment_name = cfg.visualizer["name"] = f"demo_step_{experiment}_{time.time_ns()}"
        runner = Runner.from_cfg(cfg)
        runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
        model, loader = runner.model, iter(runner.train_dataloader)
        model.train()

        def step() -> float:
            t0 = time.perf_counter()
            model.train_step(next(loader), runner.optim_wrapper)
            return time.perf_counter() - t0

        for _ in range(warmup):
            step()
        seconds = statistics.median(step() for _ in range(iters))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            wall = sum(step() for _ in range(profiled))
    row = {"sec_per_iter": seconds}
    row.update({f"{op}_pct": 100.0 * spent / wall for op, spent in seconds_in_ops(prof).items()})
    return row


def run(experiments: Sequence[str], iters: int, warmup: int, profiled: int, threads: int) -> List[Dict]:
    runs.set_threads(threads)
    rows = []
    machine = runs.hardware()
    kind = f"{machine['cpu']} ({'AVX-512' if machine['avx512'] else 'AVX2'})"
    for name in experiments:
        print(f"{name}: {warmup} + {iters} iterations, {profiled} profiled, {threads} thread(s)", flush=True)
        m = measure(name, iters, warmup, profiled)
        print(f"  {m['sec_per_iter']:.3f} s/iter; " + ", ".join(f"{op} {m[op + '_pct']:.1f}%" for op in PROFILER_LABELS),
              flush=True)
        rows.append({"experiment": name, "threads": threads, "machine": kind,
                     **{k: round(v, 4 if k == "sec_per_iter" else 1) for k, v in m.items()}})
    return rows


def write_table(rows: List[Dict], out: Path, command: str) -> None:
    write_text_atomic(out, "\n".join([",".join(COLUMNS)] + [",".join(f'"{r[c]}"' if c == "machine" else str(r[c])
                                                                     for c in COLUMNS) for r in rows]) + "\n")
    md = ["# Seconds per training iteration of the demo experiments", "", f"Command: `{command}`", "",
          f"Machine: {rows[0]['machine'] if rows else '-'}", "",
          "| experiment | threads | s/iter | tree | GP | LP | tree filter |", "| --- | --- | --- | --- | --- | --- | --- |"]
    md += [f"| {r['experiment']} | {r['threads']} | {r['sec_per_iter']} | {r['tree_pct']}% | {r['gp_pct']}% | "
           f"{r['lp_pct']}% | {r['tree_filter_pct']}% |" for r in rows]
    write_text_atomic(out.with_suffix(".md"), "\n".join(md) + "\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiments", nargs="+", default=["sem_point", "sem_point_gp_lp", "box", "box_gp_lp"],
                   help="demo experiments of the registry (default: %(default)s)")
    p.add_argument("--iters", type=int, default=20, help="timed iterations (median; default 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations first (default 5)")
    p.add_argument("--profiled", type=int, default=5, help="profiled iterations for the shares (default 5)")
    p.add_argument("--threads", type=int, default=1, help="torch threads, as the demo's jobs (default 1)")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks" / "demo_step.csv")
    args = p.parse_args(argv)
    if args.iters < 1 or args.warmup < 0 or args.profiled < 1 or args.threads < 1:
        p.error("--iters, --profiled and --threads must be >= 1, --warmup >= 0")
    try:
        rows = run(args.experiments, args.iters, args.warmup, args.profiled, args.threads)
    except (reg.RegistryError, runs.RunError) as exc:
        p.error(str(exc))
    write_table(rows, args.out, "python benchmarks/demo_step.py " + " ".join(argv or sys.argv[1:]))
    print(f"-> {args.out}, {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
