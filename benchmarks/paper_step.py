"""Time a few real training iterations of each paper config and project the suite's GPU-hours.

    python benchmarks/paper_step.py [--configs solov2_r50_voc ...] [--iters 10] [--warmup 3]
                                    [--device cuda] [--out reports/paper/step_cost.csv]

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
"""
from __future__ import annotations

import argparse
import os
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

COLUMNS = ["experiment", "config", "device", "image_hw", "batch_per_gpu", "gpus", "sec_per_iter",
           "peak_mem_mib", "max_iters", "projected_gpu_hours"]


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


def measure(cfg, image_hw: Tuple[int, int], batch: int, iters: int, warmup: int,
            device: torch.device, boxes_per_image: int = 5) -> Dict[str, float]:
    """Median seconds per training iteration and peak memory (MiB) of ``cfg`` on ``device``."""
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
    times: List[float] = []
    for i in range(warmup + iters):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        data = model.data_preprocessor(inputs, training=True)
        losses = model.loss(data["inputs"], data["data_samples"])
        loss, _ = model.parse_losses(losses)
        optim.update_params(loss)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
        print(f"  iteration {i + 1}/{warmup + iters}: {time.perf_counter() - t0:.3f} s", flush=True)
    return {"sec_per_iter": statistics.median(times), "peak_mem_mib": _peak_mib(device)}


def run(names: Optional[Sequence[str]], iters: int, warmup: int, device: torch.device) -> List[Dict]:
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
        hw, batch, gpus = train_image_hw(cfg), int(cfg.train_dataloader.batch_size), gpus_of(cfg)
        max_iters = int(cfg.train_cfg.max_iters)
        print(f"{e.name}: {hw[0]}x{hw[1]}, batch {batch}/GPU, {gpus} GPUs, {max_iters} iterations", flush=True)
        m = measure(cfg, hw, batch, iters, warmup, device)
        rows.append({"experiment": e.name, "config": e.config, "device": str(device),
                     "image_hw": f"{hw[0]}x{hw[1]}", "batch_per_gpu": batch, "gpus": gpus,
                     "sec_per_iter": round(m["sec_per_iter"], 4), "peak_mem_mib": round(m["peak_mem_mib"], 1),
                     "max_iters": max_iters,
                     "projected_gpu_hours": round(projected_gpu_hours(m["sec_per_iter"], max_iters, gpus), 1)})
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def write_table(rows: List[Dict], out: Path, command: str, device_name: str) -> None:
    lines = [",".join(COLUMNS)] + [",".join(str(r[c]) for c in COLUMNS) for r in rows]
    write_text_atomic(out, "\n".join(lines) + "\n")
    md = [f"# Training cost of the paper configs ({device_name})", "",
          f"Command: `{command}`", "",
          "| experiment | image | batch/GPU | GPUs | s/iter | peak MiB | iterations | GPU-hours |",
          "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    md += [f"| {r['experiment']} | {r['image_hw']} | {r['batch_per_gpu']} | {r['gpus']} | {r['sec_per_iter']} | "
           f"{r['peak_mem_mib']} | {r['max_iters']} | {r['projected_gpu_hours']} |" for r in rows]
    total = sum(r["projected_gpu_hours"] for r in rows)
    md += ["", f"Projected total: {total:.0f} GPU-hours (training only; seconds/iteration x iterations x GPUs)."]
    write_text_atomic(out.with_suffix(".md"), "\n".join(md) + "\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=None, help="paper entries to time (default: all with a config)")
    p.add_argument("--iters", type=int, default=10, help="timed iterations per config (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "paper" / "step_cost.csv")
    args = p.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        p.error("--iters must be >= 1 and --warmup >= 0")
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    device = torch.device(args.device)
    rows = run(args.configs, args.iters, args.warmup, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    write_table(rows, args.out, "python benchmarks/paper_step.py " + " ".join(argv or sys.argv[1:]), name)
    print(f"-> {args.out}, {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
