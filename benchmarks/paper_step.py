"""Time a few real training iterations of each paper config and project the suite's GPU-hours.

    python benchmarks/paper_step.py [--configs solov2_r50_voc ...] [--iters 10] [--warmup 3]
                                    [--device cuda] [--batch N] [--apro-share]
                                    [--out reports/paper/step_cost.csv]

For every paper entry of the registry (or the ones named): builds the
config's model and optimiser (backbone weights not loaded: random init costs
the same), feeds random images of the config's training size (SOLOv2:
1333x800, Mask2Former: its LSJ crop) with a few random boxes each, at the
config's per-GPU batch, and times ``--iters`` full iterations (forward,
losses, backward, optimiser step) after ``--warmup``. It writes per config the
median seconds per iteration, the peak memory (CUDA: max allocated; CPU: the
process's peak RSS), the schedule's iterations and GPUs, and the projected
GPU-hours = seconds/iteration x iterations x GPUs / 3600 (data-parallel, the
per-GPU batch kept; data loading and evaluation not included). The table goes
to ``--out`` (CSV) and ``<out>.md`` with the command that produced it.

``--apro-share`` adds APro's cost: each config is timed again without its GP
and LP losses (what they add, in percent), and one more step with them runs
under torch's profiler for the share of GP, LP and the spanning tree (the
``apro.*`` labels of :mod:`apro.ops`).
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from apro import registry as reg  # noqa: E402
from apro.io import write_text_atomic  # noqa: E402
from apro.ops import seconds_in_ops  # noqa: E402

COLUMNS = ["experiment", "config", "device", "image_hw", "batch_per_gpu", "gpus", "sec_per_iter",
           "peak_mem_mib", "max_iters", "projected_gpu_hours"]
# with --apro-share: the step without the GP and LP losses, what they add, and each op's share
# of a profiled step with them (percent)
SHARE_COLUMNS = ["sec_per_iter_without_apro", "apro_added_pct", "gp_pct", "lp_pct", "tree_pct"]


def train_image_hw(cfg) -> Tuple[int, int]:
    """(height, width) of the training images the config produces at its largest."""
    for step in cfg.train_dataloader.dataset.pipeline:
        if step["type"] == "RandomCrop":  # LSJ: fixed-size crops
            h, w = step["crop_size"]
            return int(h), int(w)
    for step in cfg.train_dataloader.dataset.pipeline:
        if step["type"] in ("Resize", "RandomResize", "RandomChoiceResize"):
            scales = step.get("scale") or step.get("scales")
            if isinstance(scales[0], (list, tuple)):
                scales = max(scales, key=lambda s: s[0] * s[1])
            long_side, short_side = max(scales), min(scales)
            return int(short_side), int(long_side)  # landscape, as most photos
    raise ValueError("no Resize or RandomCrop step in the training pipeline: cannot tell the image size")


def gpus_of(cfg) -> int:
    """GPUs the schedule assumes: the config's ``num_gpus`` (the release's count; registry ``gpus``)."""
    return int(cfg.num_gpus)


def projected_gpu_hours(sec_per_iter: float, max_iters: int, gpus: int) -> float:
    return sec_per_iter * max_iters * gpus / 3600.0


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def without_apro_terms(cfg):
    """A copy of ``cfg`` whose head has no GP and no LP loss (the step the APro terms are added to)."""
    cfg = cfg.copy()
    head = "mask_head" if "mask_head" in cfg.model else "panoptic_head"
    cfg.model[head]["loss_gp"] = None
    cfg.model[head]["loss_lp"] = None
    return cfg


def measure(cfg, image_hw: Tuple[int, int], batch: int, iters: int, warmup: int,
            device: torch.device, boxes_per_image: int = 5, op_shares: bool = False) -> Dict[str, float]:
    """Median seconds per training iteration and peak memory (MiB) of ``cfg`` on ``device``.

    With ``op_shares``, one more iteration runs under torch's profiler and the result
    also holds ``<op>_s``: the seconds of that iteration spent in each APro op
    (:data:`apro.ops.PROFILER_LABELS`, wall time of its ``apro.*`` label), and ``profiled_s``: the
    iteration's own seconds."""
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules
    from mmengine.optim import build_optim_wrapper

    register_all_modules()
    import apro.models.box_solov2  # noqa: F401  (what the configs' custom_imports load)
    import apro.models.mask2former_apro  # noqa: F401

    cfg.model.backbone.init_cfg = None  # no download; random weights cost the same
    model = MODELS.build(cfg.model).to(device)
    model.init_weights()
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    head = cfg.model.get("mask_head") or cfg.model.get("panoptic_head")
    num_classes = int(head.get("num_classes") or head.get("num_things_classes"))
    torch.manual_seed(0)
    inputs = demo_mm_inputs(batch_size=batch, image_shapes=[(3, *image_hw)] * batch,
                            num_items=[boxes_per_image] * batch, num_classes=num_classes, with_mask=False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        data = model.data_preprocessor(inputs, training=True)
        losses = model.loss(data["inputs"], data["data_samples"])
        loss, _ = model.parse_losses(losses)
        optim.update_params(loss)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    times: List[float] = []
    for i in range(warmup + iters):
        seconds = step()
        if i >= warmup:
            times.append(seconds)
        print(f"  iteration {i + 1}/{warmup + iters}: {seconds:.3f} s", flush=True)
    result = {"sec_per_iter": statistics.median(times), "peak_mem_mib": _peak_mib(device)}
    if op_shares:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            result["profiled_s"] = step()
        spent = seconds_in_ops(prof)
        result.update({f"{op}_s": seconds for op, seconds in spent.items()})
        print(f"  profiled iteration: {result['profiled_s']:.3f} s, "
              + ", ".join(f"{op} {seconds:.3f} s" for op, seconds in spent.items()), flush=True)
    return result


def run(names: Optional[Sequence[str]], iters: int, warmup: int, device: torch.device,
        batch: Optional[int] = None, apro_share: bool = False) -> List[Dict]:
    """One row per paper entry (``names``: only those); ``batch`` overrides the per-GPU batch."""
    from mmengine.config import Config

    registry = reg.load_registry()
    entries = [e for e in registry.experiments_in("paper") if e.config]
    if names:
        unknown = sorted(set(names) - {e.name for e in entries})
        if unknown:
            raise SystemExit(f"--configs: {', '.join(unknown)} not among the paper entries with a config: "
                             f"{', '.join(e.name for e in entries)}")
        entries = [e for e in entries if e.name in names]
    rows = []
    for e in entries:
        cfg = Config.fromfile(str(e.config_path()))
        hw, gpus = train_image_hw(cfg), gpus_of(cfg)
        per_gpu = int(batch or cfg.train_dataloader.batch_size)
        max_iters = int(cfg.train_cfg.max_iters)
        print(f"{e.name}: {hw[0]}x{hw[1]}, batch {per_gpu}/GPU, {gpus} GPUs, {max_iters} iterations", flush=True)
        m = measure(cfg, hw, per_gpu, iters, warmup, device, op_shares=apro_share)
        row = {"experiment": e.name, "config": e.config, "device": str(device),
               "image_hw": f"{hw[0]}x{hw[1]}", "batch_per_gpu": per_gpu, "gpus": gpus,
               "sec_per_iter": round(m["sec_per_iter"], 4), "peak_mem_mib": round(m["peak_mem_mib"], 1),
               "max_iters": max_iters,
               "projected_gpu_hours": round(projected_gpu_hours(m["sec_per_iter"], max_iters, gpus), 1)}
        if apro_share:
            print(f"{e.name} without the GP and LP losses:", flush=True)
            plain = measure(without_apro_terms(cfg), hw, per_gpu, iters, warmup, device)["sec_per_iter"]
            row.update(share_columns(m, plain))
        rows.append(row)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def share_columns(with_terms: Dict[str, float], sec_without: float) -> Dict[str, float]:
    """The SHARE_COLUMNS of a row: ``with_terms`` from ``measure(..., op_shares=True)``."""
    pct = lambda op: round(100.0 * with_terms[f"{op}_s"] / with_terms["profiled_s"], 1)
    return {"sec_per_iter_without_apro": round(sec_without, 4),
            "apro_added_pct": round(100.0 * (with_terms["sec_per_iter"] - sec_without) / sec_without, 1),
            "gp_pct": pct("gp"), "lp_pct": pct("lp"), "tree_pct": pct("tree")}


def write_table(rows: List[Dict], out: Path, command: str, device_name: str) -> None:
    columns = COLUMNS + (SHARE_COLUMNS if rows and all(c in rows[0] for c in SHARE_COLUMNS) else [])
    lines = [",".join(columns)] + [",".join(str(r[c]) for c in columns) for r in rows]
    write_text_atomic(out, "\n".join(lines) + "\n")
    md = [f"# Training cost of the paper configs ({device_name})", "",
          f"Command: `{command}`", "",
          "| experiment | image | batch/GPU | GPUs | s/iter | peak MiB | iterations | GPU-hours |",
          "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    md += [f"| {r['experiment']} | {r['image_hw']} | {r['batch_per_gpu']} | {r['gpus']} | {r['sec_per_iter']} | "
           f"{r['peak_mem_mib']} | {r['max_iters']} | {r['projected_gpu_hours']} |" for r in rows]
    total = sum(r["projected_gpu_hours"] for r in rows)
    md += ["", f"Projected total: {total:.0f} GPU-hours (training only; seconds/iteration x iterations x GPUs)."]
    if columns != COLUMNS:
        md += ["", "APro's share of a step: the step without the GP and LP losses, what the two add, and the "
               "share of one profiled step with them spent in GP, LP and the spanning tree.", "",
               "| experiment | s/iter with | s/iter without | added | GP | LP | tree |",
               "| --- | --- | --- | --- | --- | --- | --- |"]
        md += [f"| {r['experiment']} | {r['sec_per_iter']} | {r['sec_per_iter_without_apro']} | "
               f"{r['apro_added_pct']}% | {r['gp_pct']}% | {r['lp_pct']}% | {r['tree_pct']}% |" for r in rows]
    write_text_atomic(out.with_suffix(".md"), "\n".join(md) + "\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=None, help="paper entries to time (default: all with a config)")
    p.add_argument("--iters", type=int, default=10, help="timed iterations per config (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=None,
                   help="images per iteration (default: the config's per-GPU batch)")
    p.add_argument("--apro-share", action="store_true",
                   help="also time each config without its GP and LP losses and profile the ops' share")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "paper" / "step_cost.csv")
    args = p.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        p.error("--iters must be >= 1 and --warmup >= 0")
    if args.batch is not None and args.batch < 1:
        p.error("--batch must be >= 1")
    device = torch.device(args.device)
    rows = run(args.configs, args.iters, args.warmup, device, batch=args.batch, apro_share=args.apro_share)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    write_table(rows, args.out, "python benchmarks/paper_step.py " + " ".join(argv or sys.argv[1:]), name)
    print(f"-> {args.out}, {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
