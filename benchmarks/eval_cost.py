"""Seconds per image of a paper model's inference on this machine, and the CPU-hours of evaluating an entry.

    python benchmarks/eval_cost.py [--configs solov2_r50_voc mask2former_r50_voc] [--images 3] [--warmup 1]
                                   [--threads 2] [--out reports/benchmarks/eval_cpu.csv]

For each named paper entry: builds the config's model with its own initialisation (random
weights: the network costs the same as trained ones), runs ``--images`` images through
``test_step`` at the entry's test resolution (a VOC-sized 500 x 375 photo resized by the test
pipeline's (1333, 800) keep-ratio rule: 1067 x 800, padded to /32) after ``--warmup``, and writes
the median seconds per image and the projected hours for the entry's validation split (VOC val
1,449 images, COCO val2017 5,000) to ``--out`` and ``<out>.md``. SOLOv2's post-processing grows
with the grid cells above ``score_thr``, which random weights do not produce as a trained model
does: each image's threshold is lowered to admit its ``--candidates`` best cells (default 500,
``nms_pre``: the most Matrix NMS keeps), so the figure is what a trained model's busiest images
cost. Mask2Former's post-processing is fixed (its 100 queries). Data loading and COCO evaluation
are not included (seconds, next to inference).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from apro import registry as reg  # noqa: E402
from apro.io import write_text_atomic  # noqa: E402

VAL_IMAGES = {"voc": 1449, "coco": 5000}
PHOTO_HW = (375, 500)  # a typical VOC photo (height, width)
COLUMNS = ["experiment", "config", "threads", "input_hw", "sec_per_image", "val_images", "projected_cpu_hours"]


def test_input_hw(photo_hw=PHOTO_HW, scale=(1333, 800)):
    """The test pipeline's keep-ratio resize of a photo: long side <= 1333, short side <= 800."""
    h, w = photo_hw
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


def _admit_candidates(model, inputs, candidates: int) -> None:
    """SOLOv2: set score_thr so that the image's ``candidates`` best grid cells (after point NMS) pass it."""
    import torch.nn.functional as F

    head = model.mask_head
    with torch.no_grad():
        _, cls, _ = head(model.extract_feat(model.data_preprocessor(inputs, False)["inputs"]))
    scores = []
    for c in cls:
        c = c.sigmoid()
        keep = F.max_pool2d(c, 2, stride=1, padding=1)[:, :, :-1, :-1] == c
        scores.append((c * keep).flatten())
    scores = torch.cat(scores)
    head.test_cfg.score_thr = float(scores.topk(min(candidates, scores.numel())).values[-1]) - 1e-7


def measure(cfg, images: int, warmup: int, photo_hw=PHOTO_HW, candidates: int = 500) -> Dict[str, float]:
    """Median seconds per image of ``cfg``'s model in ``test_step`` on the CPU."""
    import logging

    from mmdet.structures import DetDataSample
    from mmengine.logging import MMLogger

    from apro.evaluate import build_model

    MMLogger.get_current_instance().setLevel(logging.WARNING)  # no per-parameter init log
    cfg.model.backbone.init_cfg = None
    model = build_model(cfg)
    model.init_weights()
    model.eval()
    hw = test_input_hw(photo_hw)
    torch.manual_seed(0)
    times: List[float] = []
    for i in range(warmup + images):
        img = torch.randint(0, 256, (3, *hw), dtype=torch.uint8)
        sample = DetDataSample(metainfo=dict(img_id=i, img_shape=hw, ori_shape=photo_hw,
                                             scale_factor=(hw[1] / photo_hw[1], hw[0] / photo_hw[0])))
        inputs = {"inputs": [img], "data_samples": [sample]}
        if cfg.model.type == "BoxSOLOv2":
            _admit_candidates(model, inputs, candidates)
        t0 = time.perf_counter()
        with torch.no_grad():
            model.test_step(inputs)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
        print(f"  image {i + 1}/{warmup + images}: {time.perf_counter() - t0:.2f} s", flush=True)
    return {"sec_per_image": statistics.median(times), "input_hw": f"{hw[0]}x{hw[1]}"}


def run(names: Sequence[str], images: int, warmup: int, threads: int, candidates: int = 500) -> List[Dict]:
    from mmengine.config import Config

    torch.set_num_threads(threads)
    registry = reg.load_registry()
    rows = []
    for name in names:
        e = registry.experiment(name)
        if e.config is None or "paper" not in e.suites:
            raise SystemExit(f"--configs: {name} is not a paper entry with a config")
        cfg = Config.fromfile(str(e.config_path()))
        print(f"{name}: {images} images after {warmup} warm-up, {threads} threads", flush=True)
        m = measure(cfg, images, warmup, candidates=candidates)
        n = VAL_IMAGES[e.dataset]
        rows.append({"experiment": name, "config": e.config, "threads": threads, "input_hw": m["input_hw"],
                     "sec_per_image": round(m["sec_per_image"], 2), "val_images": n,
                     "projected_cpu_hours": round(m["sec_per_image"] * n / 3600, 1)})
    return rows


def write_table(rows: List[Dict], out: Path, command: str, machine: str) -> None:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out, buf.getvalue())
    md = [f"Inference on the CPU ({machine}), random weights, `{command}`:", "",
          "| entry | threads | input | s / image | val images | projected CPU-hours |",
          "| --- | --- | --- | --- | --- | --- |"]
    md += [f"| {r['experiment']} | {r['threads']} | {r['input_hw']} | {r['sec_per_image']} | {r['val_images']} | "
           f"{r['projected_cpu_hours']} |" for r in rows]
    write_text_atomic(out.with_suffix(".md"), "\n".join(md) + "\n")


def machine() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    return f"{platform.processor() or platform.machine()}, {'AVX-512' if 'avx512' in flags else 'AVX2'}, " \
           f"torch {torch.__version__}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["solov2_r50_voc", "mask2former_r50_voc"])
    p.add_argument("--images", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--candidates", type=int, default=500, help="SOLOv2: grid cells admitted per image")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks" / "eval_cpu.csv")
    args = p.parse_args(argv)
    rows = run(args.configs, args.images, args.warmup, args.threads, args.candidates)
    write_table(rows, args.out, "python benchmarks/eval_cost.py " + " ".join(sys.argv[1:]), machine())
    print(args.out.with_suffix(".md").read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
