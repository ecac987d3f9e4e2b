"""The ops of this checkout against another build of them, call by call: before / after and the bits.

    python benchmarks/ops_ab.py BASE [--threads 1] [--rounds 3] [--calls 9] [--out FILE.csv]
                                     [--height 200 --width 336 --instances 32]

BASE is another checkout with its ops built in place, e.g. the previous commit:

    git worktree add /tmp/base HEAD~1 && (cd /tmp/base && python setup.py build_ext --inplace)

The inputs are made once, here (the ops benchmark's SOLOv2 workload, 200 x 336 with K = 32
maps, and the semantic demo's, 8 images at 80 px with 7 class maps). Each round then runs one
fresh process per checkout, in alternation so that both see the same drift of a shared machine;
a process imports ``apro.ops`` of its checkout, times each call ``--calls`` times (median) and
keeps its outputs. Printed per call: the median over the rounds before and after, their ratio,
and max |after - before| over the outputs (0: bit for bit the same).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> what it times; each is a call of the public ops API only, so older checkouts run it too
CALLS = {
    "tree": "minimum_spanning_tree of the image",
    "gp pass 1": "image-guided GP, zeta 0.01",
    "gp pass 2": "self-guided GP, zeta 0.07",
    "lp": "LP 5 x 5, 20 iterations, box-masked maps",
    "tree filter": "tree filter, both passes",
    "semantic gp": "GP both passes, 8 images x 7 class maps at 80 x 80",
    "semantic lp": "LP, 8 images x 7 class maps at 80 x 80",
}


def make_inputs(path: Path, height: int, width: int, instances: int) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ops import make_workload

    image, predictions, boxes = make_workload(height, width, instances)
    g = torch.Generator().manual_seed(1)
    sem_image = torch.rand(8, 3, 80, 80, generator=g)
    sem_probs = torch.softmax(4 * torch.rand(8, 7, 80, 80, generator=g), dim=1)
    torch.save(dict(image=image, predictions=predictions, boxes=boxes, sem_image=sem_image, sem_probs=sem_probs),
               path)


def child(checkout: str, inputs: str, out: str, threads: int, calls: int) -> None:
    """One process: the calls with ``checkout``'s ops, their median seconds and outputs into ``out``."""
    sys.path.insert(0, checkout)
    import time

    import torch

    import apro
    from apro.ops import global_propagate, local_propagate, minimum_spanning_tree, tree_filter

    if not Path(apro.__file__).resolve().is_relative_to(Path(checkout).resolve()):
        raise SystemExit(f"ops_ab: imported apro from {apro.__file__}, not from {checkout}")
    torch.set_num_threads(threads)
    x = torch.load(inputs)
    image, predictions, boxes = x["image"], x["predictions"], x["boxes"]
    k = predictions.shape[0]
    index = torch.zeros(k, dtype=torch.int64)
    tree = minimum_spanning_tree(image)
    first = global_propagate(predictions, image, tree, 0.01, index)
    sem_image, sem_probs = x["sem_image"], x["sem_probs"]
    sem_index = torch.arange(sem_image.shape[0])
    sem_tree = minimum_spanning_tree(sem_image)

    def tree_filter_total():
        once = tree_filter(predictions[:, None], image, tree, 0.01, index)
        return tree_filter(once, None, tree, 0.07, index)

    def semantic_gp():
        once = global_propagate(sem_probs, sem_image, sem_tree, 0.05, sem_index)
        return global_propagate(once, None, sem_tree, 0.07, sem_index)

    fns = {
        "tree": lambda: minimum_spanning_tree(image),
        "gp pass 1": lambda: global_propagate(predictions, image, tree, 0.01, index),
        "gp pass 2": lambda: global_propagate(first, None, tree, 0.07, index),
        "lp": lambda: local_propagate(image, predictions, boxes, index, kernel_size=5, zeta=0.15, iterations=20),
        "tree filter": tree_filter_total,
        "semantic gp": semantic_gp,
        "semantic lp": lambda: local_propagate(sem_image, sem_probs, None, sem_index, kernel_size=5, zeta=0.15,
                                               iterations=20),
    }
    assert list(fns) == list(CALLS)
    result = {}
    for name, fn in fns.items():
        output = fn()  # warm-up, and the output to compare
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        result[name] = dict(seconds=statistics.median(times), output=output)
    torch.save(result, out)


def compare(base: Path, threads: int, rounds: int, calls: int, size: tuple) -> list[dict]:
    import torch

    sides = {"before": base.resolve(), "after": ROOT}
    seconds = {side: {name: [] for name in CALLS} for side in sides}
    outputs = {}
    with tempfile.TemporaryDirectory(prefix="ops_ab_") as tmp:
        inputs = Path(tmp) / "inputs.pt"
        make_inputs(inputs, *size)
        for r in range(rounds):
            for side, checkout in sides.items():
                print(f"round {r + 1}/{rounds}: {side} ({checkout})", file=sys.stderr, flush=True)
                out = Path(tmp) / f"{side}.pt"
                subprocess.run([sys.executable, __file__, "--child", str(checkout), "--inputs", str(inputs),
                                "--child-out", str(out), "--threads", str(threads), "--calls", str(calls)],
                               check=True)
                result = torch.load(out)
                for name in CALLS:
                    seconds[side][name].append(result[name]["seconds"])
                outputs[side] = {name: result[name]["output"] for name in CALLS}
    rows = []
    for name, what in CALLS.items():
        before, after = (statistics.median(seconds[side][name]) for side in sides)
        diff = float((outputs["after"][name].double() - outputs["before"][name].double()).abs().max())
        rows.append(dict(call=name, workload=what, threads=threads, before_s=before, after_s=after,
                         speedup=before / after, max_abs_diff=diff))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("base", nargs="?", type=Path, help="the other checkout, its ops built in place")
    p.add_argument("--threads", type=int, default=1, help="torch threads in both (default 1)")
    p.add_argument("--rounds", type=int, default=3, help="processes per checkout, alternating (default 3)")
    p.add_argument("--calls", type=int, default=9, help="timed calls of each op per process (median; default 9)")
    p.add_argument("--out", type=Path, help="also write the table as CSV here")
    p.add_argument("--height", type=int, default=200)
    p.add_argument("--width", type=int, default=336)
    p.add_argument("--instances", type=int, default=32, help="maps of the SOLOv2 workload (default 32)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--inputs", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.inputs, args.child_out, args.threads, args.calls)
        return 0
    if args.base is None:
        p.error("BASE: the checkout to compare against is required")
    if not (args.base / "apro" / "ops.py").is_file() or not list((args.base / "apro").glob("_C*.so")):
        p.error(f"BASE {args.base}: expected a checkout with its ops built in place (apro/ops.py and apro/_C*.so); "
                "build them with `python setup.py build_ext --inplace` there")
    if args.threads < 1 or args.rounds < 1 or args.calls < 1:
        p.error("--threads, --rounds and --calls must be >= 1")
    rows = compare(args.base, args.threads, args.rounds, args.calls, (args.height, args.width, args.instances))
    print(f"{'call':<12} {'before':>10} {'after':>10} {'speed-up':>9} {'max |diff|':>11}   ({args.threads} thread(s), "
          f"medians of {args.rounds} processes x {args.calls} calls; {args.height} x {args.width}, "
          f"K = {args.instances})")
    for r in rows:
        print(f"{r['call']:<12} {1000 * r['before_s']:8.2f}ms {1000 * r['after_s']:8.2f}ms {r['speedup']:8.2f}x "
              f"{r['max_abs_diff']:11.3g}   {r['workload']}")
    if args.out:
        from ops import write_csv  # the ops benchmark's table writer: atomic, with the machine and torch

        write_csv(rows, str(args.out))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
