"""List the graph breaks of a paper SOLOv2 head's training loss under ``torch.compile``.

    python benchmarks/compile_breaks.py [--config solov2_r50_voc] [--size 256x384] [--boxes 4]

Builds the config's model (random weights), runs the backbone and neck on random
images with random boxes, then traces the head's ``loss`` (forward, target
assignment, the mask and class losses) with TorchDynamo (``backend="eager"``:
only the graph capture is measured) and prints the number of graphs and every
graph break, with the line it happened at and torch's reason. The breaks inside
``apro/ops.py`` and the ops are counted apart: the APro terms compile into one
graph (tests/models/test_paper_heads.py::test_solov2_mask_terms_compile_into_one_graph
checks that with ``fullgraph=True``).
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from apro import registry as reg  # noqa: E402


class BreakLog(logging.Handler):
    """Collects (``file:line``, first line of the reason) from torch's graph-break log."""

    def __init__(self):
        super().__init__()
        self.breaks = []

    def emit(self, record):
        if not record.name.endswith("__graph_breaks"):
            return
        text = record.getMessage()
        where = re.search(r"Graph break (?:\(.*?\) )?in user code at (\S+)", text)
        explanation = re.search(r"Explanation: (.*)", text)
        if where:
            detail = explanation.group(1).strip() if explanation else text.splitlines()[1][:160]
            if "Skipping the function and falling back to eager" in text:
                detail += " (the rest of this function runs eagerly)"
            self.breaks.append((where.group(1).replace(str(ROOT) + "/", ""), detail))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="solov2_r50_voc", help="a paper SOLOv2 entry of the registry")
    parser.add_argument("--size", default="256x384", help="image height x width")
    parser.add_argument("--boxes", type=int, default=4, help="random boxes per image")
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split("x"))

    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules()
    import apro.models.box_solov2  # noqa: F401  (what the configs' custom_imports load)

    cfg = Config.fromfile(str(reg.load_registry().experiment(args.config).config_path()))
    if cfg.model.get("mask_head", {}).get("type") != "BoxSOLOV2Head":
        raise SystemExit(f"--config {args.config}: not a SOLOv2 entry (its head is not BoxSOLOV2Head)")
    cfg.model.backbone.init_cfg = None  # no download
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.manual_seed(0)
    inputs = demo_mm_inputs(batch_size=2, image_shapes=[(3, height, width)] * 2, num_items=[args.boxes] * 2,
                            num_classes=cfg.model.mask_head.num_classes, with_mask=False)
    data = model.data_preprocessor(inputs, training=True)
    feats = model.extract_feat(data["inputs"])

    log = BreakLog()
    torch._logging.set_logs(graph_breaks=True)
    logger = logging.getLogger("torch._dynamo")  # where the graph-break log propagates: ours only, for the trace
    printing, logger.handlers = logger.handlers, [log]
    torch._dynamo.reset()
    try:
        explained = torch._dynamo.explain(model.mask_head.loss)(feats, data["data_samples"],
                                                               batch_inputs=data["inputs"])
    finally:
        logger.handlers = printing
        torch._logging.set_logs()

    in_ops = [b for b in log.breaks if b[0].startswith(("apro/ops.py", "apro/device_ops.py", "apro/fake_kernels.py"))]
    print(f"\n{args.config}, {height}x{width}, 2 images x {args.boxes} boxes: "
          f"{explained.graph_count} graphs, {explained.graph_break_count} graph breaks, "
          f"{len(in_ops)} of them in apro.ops and the ops\n")
    print("| where | reason |\n|---|---|")
    for where, reason in dict.fromkeys(log.breaks):  # each distinct break once
        print(f"| {where} | {reason} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
