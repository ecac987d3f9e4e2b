"""``reports/crosscheck/summary.md`` and ``summary.csv``: the side-by-side check of every entry, one row each.

Read from the entries' ``crosscheck.json`` (:mod:`apro.crosscheck.run`); both files are written
atomically, and only when every entry asked for has a result (nothing half-written).
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Dict, List, Sequence

from apro import layout
from apro.crosscheck.compare import TOLERANCES
from apro.errors import InputError
from apro.io import write_text_atomic

COMMAND = "make original-env ORIGINAL=<clone of CircleRadon/APro> && .venv/bin/apro crosscheck"


def row_of(result: dict) -> dict:
    """One entry's figures: a row of summary.csv (its keys are the columns)."""
    p = result["parts"]
    loss, grads, preds, pipes = (p.get(k, {}) for k in ("losses", "grads", "predictions", "pipelines"))
    nan = math.nan
    return {"entry": result["entry"], "release_config": result["release_config"], "release_steps": result["steps"],
            "strict_load": "yes" if p["load"]["strict"] else "no",
            "loss_max_rel_diff": loss.get("max_rel_diff", nan), "loss_worst_term": loss.get("worst_term"),
            "grad_min_cos": grads.get("min_cos", nan), "grad_max_rel_norm_diff": grads.get("max_rel_norm_diff", nan),
            "grad_parameters": grads.get("parameters", 0), "grad_within_by_resolution": grads.get("within_by_noise", 0),
            "detections_release": preds.get("release", 0), "detections_ours": preds.get("ours", 0),
            "detections_within": preds.get("within", 0), "mask_min_iou": preds.get("min_iou", nan),
            "score_max_diff": preds.get("max_score_diff", nan),
            "pipeline_input_max_abs": pipes.get("max_input_abs", nan),
            "pipeline_box_max_abs": pipes.get("max_box_abs", nan),
            "pipeline_box_mask_pixels": pipes.get("box_mask_pixels", 0), "verdict": result["verdict"],
            "problems": len(result["problems"]), "seconds": result["seconds"]}


def load_results(entries: Sequence[str], root: str = ".") -> List[dict]:
    missing = [e for e in entries if not (Path(root) / layout.crosscheck_result(e)).is_file()]
    if missing:
        raise InputError(f"no crosscheck result for {missing} (expected {layout.crosscheck_result('<entry>')}; "
                         f"run `apro crosscheck {' '.join(missing)}`)")
    return [json.loads((Path(root) / layout.crosscheck_result(e)).read_text()) for e in entries]


def _g(v, digits=2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}e}"


def _f(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def markdown(results: Sequence[dict]) -> str:
    first = results[0]
    rel, ours = first["release_versions"], first["suite_versions"]
    out = ["# The APro release and this suite, side by side", "",
           f"Every entry's model built by the release (CircleRadon/APro at {first['release_commit'][:7]}: "
           f"torch {rel['torch']}, mmcv-full {rel['mmcv']}, its mmdet {rel['mmdet']} fork, numpy {rel['numpy']}) "
           f"and trained on one batch with AdamW (lr {first['lr']:g}; at least 3 steps, then on until every image has "
           f"a detection: the steps column), saved as an mmdet 2.25 "
           f"checkpoint, converted with `apro convert-checkpoint` into this suite's paper config "
           f"(torch {ours['torch']}, "
           f"mmcv {ours['mmcv']}, mmdet {ours['mmdet']}, mmengine {ours['mmengine']}), and both run on the same "
           f"input tensors: the VOC photo ({first['instances']['voc']} instances), the ARC2017 photo "
           f"({first['instances']['arc2017']}) and a synthetic image ({first['instances']['synthetic']}), at "
           f"{first['input_shape'][0]} x {first['input_shape'][1]}. Compared: every loss of the training forward, "
           "every parameter's gradient, the test-mode detections (matched one to one by label and mask IoU at the "
           "original image size), and each stack's train and test pipelines on the photos with their random "
           "choices fixed (the input tensor, boxes, labels and box masks). docs/crosscheck.md says how.", "",
           "Tolerances: losses relative difference <= {loss_rel:g}; gradients cosine >= {grad_cos:g} and relative "
           "norm difference <= {grad_rel_norm:g}, or within {grad_noise_factor:g} times the gradient's float32 "
           "resolution (this suite's own float32 gradient against its float64 one; the count in brackets); "
           "detections mask IoU >= {mask_iou:g} and score difference <= {score_abs:g}; pipelines input difference "
           "<= {input_abs:g}, boxes <= {box_abs:g} px, box masks identical.".format(**TOLERANCES), "",
           "| entry | steps | strict load | losses: max rel. diff | gradients: min cos / max norm diff | detections "
           "within / release (ours) | min mask IoU | pipelines: input / box / mask px | verdict |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        w = row_of(r)
        out.append(f"| {w['entry']} | {w['release_steps']} | {w['strict_load']} | "
                   f"{_g(w['loss_max_rel_diff'])} ({w['loss_worst_term']}) | "
                   f"{w['grad_min_cos']:.7f} / {_g(w['grad_max_rel_norm_diff'])} ({w['grad_within_by_resolution']}) | "
                   f"{w['detections_within']} / "
                   f"{w['detections_release']} ({w['detections_ours']}) | {_f(w['mask_min_iou'])} | "
                   f"{_g(w['pipeline_input_max_abs'], 1)} / {_g(w['pipeline_box_max_abs'], 1)} / "
                   f"{w['pipeline_box_mask_pixels']} | **{w['verdict']}** |")
    problems = [(r["entry"], p) for r in results for p in r["problems"]]
    problems += [(r["entry"], "no detection on any image on either side: no prediction compared") for r in results
                 if not r["parts"].get("predictions", {}).get("compared", True)]
    out += ["", "## Differences", ""]
    out += [f"- {e}: {p}" for e, p in problems] if problems else ["None: every entry is at parity."]
    hw = first.get("hardware", {})
    where = f"{hw.get('cores', '?')} cores of an {hw.get('cpu', '?')} CPU ({'AVX-512' if hw.get('avx512') else 'AVX2'})"
    out += ["", "## Reproduce", "", f"    {COMMAND}", "",
            f"{sum(r['seconds'] for r in results) / 60:.0f} minutes for the {len(results)} entries, "
            f"{first.get('threads', '?')} threads per side, on {where}."]
    return "\n".join(out) + "\n"


def csv_text(results: Sequence[dict]) -> str:
    buf = io.StringIO()
    rows = [row_of(r) for r in results]
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_summary(entries: Sequence[str], root: str = ".") -> Dict[str, str]:
    results = load_results(entries, root)
    files = {k: str(Path(root) / v) for k, v in layout.crosscheck_report_files().items()}
    write_text_atomic(Path(files["md"]), markdown(results))
    write_text_atomic(Path(files["csv"]), csv_text(results))
    return files
