"""Term-by-term comparison of the release's and this suite's results on the check's batch.

Both sides (:mod:`apro.crosscheck.release_side`, :mod:`apro.crosscheck.suite_side`) produce

* ``losses``: loss name -> float (the training forward's dict; the names are each stack's own);
* ``grads``: parameter name -> gradient tensor (each stack's own names);
* ``predictions``: per image ``labels``, ``scores``, bit-packed ``masks`` at the original size;
* ``pipelines``: per photo and ``train`` / ``test``: the model input tensor, boxes, labels, box masks;

and the functions here compare them, each returning a small dict of measured figures plus the list of
``problems`` (one line each, naming the term, parameter, image or photo) where a figure misses its
tolerance (:data:`TOLERANCES`). Nothing here knows which side is which beyond the argument order.
"""
from __future__ import annotations

import math
from typing import Callable, List, Mapping, Optional, Sequence

import numpy as np

#: the figures each comparison must meet for parity
TOLERANCES = {
    "loss_rel": 1e-4,        # |ours - release| / |release| of every loss term
    "grad_cos": 0.9999,      # cosine of every parameter's gradients
    "grad_rel_norm": 1e-3,   # |  |g_ours| - |g_release|  | / |g_release|
    # ... or within this many times the gradient's float32 resolution: this suite's own float32 gradient
    # against its float64 one (a bias summed over every pixel can cancel to 1e-3 of its terms' size)
    "grad_noise_factor": 2.0,
    "mask_iou": 0.99,        # every matched detection's mask IoU
    "score_abs": 1e-4,       # every matched detection's |score difference|
    "input_abs": 1e-4,       # pipelines: max |difference| of the normalised input tensors
    "box_abs": 1e-3,         # pipelines: max |difference| of the boxes (pixels)
}
#: the release's loss names -> this suite's, per framework (Mask2Former's intermediate layers: "d<i>." prefix)
LOSS_NAMES = {
    "SOLOv2": {"loss_cate": "loss_cls", "loss_boxpro": "loss_proj", "loss_global": "loss_gp", "loss_local": "loss_lp"},
    "Mask2Former": {"loss_cls": "loss_cls", "loss_project": "loss_proj", "loss_global": "loss_gp",
                    "loss_local": "loss_lp"},
}
_SHOWN = 5


def _rel(a: float, b: float) -> float:
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def our_loss_name(name: str, framework: str) -> Optional[str]:
    """This suite's name of the release's loss ``name`` (None if it has none)."""
    prefix, _, base = name.rpartition(".")
    mapped = LOSS_NAMES[framework].get(base)
    if mapped is None:
        return None
    return f"{prefix}.{mapped}" if prefix else mapped


def compare_losses(release: Mapping[str, float], ours: Mapping[str, float], framework: str) -> dict:
    rows, problems = [], []
    seen = set()
    for name, value in sorted(release.items()):
        mine = our_loss_name(name, framework)
        if mine is None or mine not in ours:
            problems.append(f"loss {name}: the release computes it, this suite has no {mine or 'counterpart'}")
            continue
        seen.add(mine)
        rel = _rel(float(value), float(ours[mine]))
        rows.append({"release": name, "ours": mine, "release_value": float(value), "our_value": float(ours[mine]),
                     "rel_diff": rel})
        if not rel <= TOLERANCES["loss_rel"]:
            problems.append(f"loss {name} ({mine}): release {value:.6g}, this suite {ours[mine]:.6g} "
                            f"(relative difference {rel:.2e})")
    for mine in sorted(set(ours) - seen):
        problems.append(f"loss {mine}: only this suite computes it")
    worst = max(rows, key=lambda r: r["rel_diff"], default=None)
    return {"terms": rows, "max_rel_diff": worst["rel_diff"] if worst else math.nan,
            "worst_term": worst["release"] if worst else None, "problems": problems}


def _cos_rel(a, b) -> tuple:
    import torch

    a, b = a.double().flatten(), b.double().flatten()
    na, nb = float(a.norm()), float(b.norm())
    if na == 0.0 and nb == 0.0:
        return 1.0, 0.0
    return float(torch.dot(a, b) / max(na * nb, 1e-300)), abs(na - nb) / max(na, nb)


def compare_grads(release: Mapping[str, "object"], ours: Mapping[str, "object"], rename: Callable[[str], str],
                  ours_float64: Optional[Mapping[str, "object"]] = None) -> dict:
    """Per parameter (release name -> ``rename`` -> this suite's): cosine and relative norm difference. With
    ``ours_float64`` (this suite's gradients in float64), a gradient also passes within
    ``grad_noise_factor`` times its own float32 resolution (ours against ours in float64)."""
    rows, problems = [], []
    seen = set()
    factor = TOLERANCES["grad_noise_factor"]
    for name, g in release.items():
        mine = rename(name)
        if mine not in ours:
            problems.append(f"gradient of {name}: the release has one, this suite's {mine} has none")
            continue
        seen.add(mine)
        if tuple(g.shape) != tuple(ours[mine].shape):
            problems.append(f"gradient of {name}: shape {tuple(g.shape)} vs {tuple(ours[mine].shape)}")
            continue
        cos, rel = _cos_rel(g, ours[mine])
        row = {"release": name, "ours": mine, "cos": cos, "rel_norm_diff": rel, "norm": float(g.double().norm())}
        cos_tol, rel_tol = 1.0 - TOLERANCES["grad_cos"], TOLERANCES["grad_rel_norm"]
        if ours_float64 is not None and mine in ours_float64:
            noise_cos, noise_rel = _cos_rel(ours[mine], ours_float64[mine])
            row.update(noise_cos=noise_cos, noise_rel_norm_diff=noise_rel)
            cos_tol, rel_tol = max(cos_tol, factor * (1.0 - noise_cos)), max(rel_tol, factor * noise_rel)
        row["within"] = 1.0 - cos <= cos_tol and rel <= rel_tol
        row["by_noise"] = row["within"] and not (cos >= TOLERANCES["grad_cos"] and rel <= TOLERANCES["grad_rel_norm"])
        rows.append(row)
    for mine in sorted(set(ours) - seen):
        problems.append(f"gradient of {mine}: only this suite has one")
    bad = [r for r in rows if not r["within"]]
    for r in sorted(bad, key=lambda r: r["cos"])[:_SHOWN]:
        floor = f" (float32 resolution {r['noise_rel_norm_diff']:.2e})" if "noise_rel_norm_diff" in r else ""
        problems.append(f"gradient of {r['release']} ({r['ours']}): cosine {r['cos']:.6f}, "
                        f"norm difference {r['rel_norm_diff']:.2e}{floor}")
    if len(bad) > _SHOWN:
        problems.append(f"... and {len(bad) - _SHOWN} more parameters' gradients outside the tolerances")
    return {"parameters": len(rows), "outside": len(bad), "within_by_noise": sum(r["by_noise"] for r in rows),
            "min_cos": min((r["cos"] for r in rows), default=math.nan),
            "max_rel_norm_diff": max((r["rel_norm_diff"] for r in rows), default=math.nan),
            "worst": sorted(rows, key=lambda r: r["rel_norm_diff"], reverse=True)[:_SHOWN], "problems": problems}


def unpack_masks(packed, shape: Sequence[int]) -> np.ndarray:
    packed = packed.numpy() if hasattr(packed, "numpy") else np.asarray(packed)
    h, w = int(shape[-2]), int(shape[-1])
    return np.unpackbits(packed, axis=-1, count=w).astype(bool).reshape(-1, h, w)


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import torch

    fa = torch.from_numpy(a.reshape(len(a), -1)).float()
    fb = torch.from_numpy(b.reshape(len(b), -1)).float()
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))  # two empty masks agree
    return iou.numpy()


def match_detections(release: dict, ours: dict) -> dict:
    """Greedy one-to-one matching of one image's detections: release detections by falling score, each to the
    unmatched detection of this suite with the same label and the highest mask IoU (ties: closest score)."""
    ra, oa = unpack_masks(release["masks"], release["shape"]), unpack_masks(ours["masks"], ours["shape"])
    rl, ol = np.asarray(release["labels"]), np.asarray(ours["labels"])
    rs, os_ = np.asarray(release["scores"], np.float64), np.asarray(ours["scores"], np.float64)
    iou = _iou_matrix(ra, oa) if len(ra) and len(oa) else np.zeros((len(ra), len(oa)))
    free = np.ones(len(oa), bool)
    pairs = []
    for i in np.argsort(-rs, kind="stable"):
        cand = np.nonzero(free & (ol == rl[i]))[0]
        if not len(cand):
            continue
        key = np.lexsort((np.abs(os_[cand] - rs[i]), -iou[i, cand]))
        j = cand[key[0]]
        free[j] = False
        pairs.append((int(i), int(j), float(iou[i, j]), float(abs(os_[j] - rs[i]))))
    return {"release": len(ra), "ours": len(oa), "pairs": pairs,
            "release_empty": int((ra.reshape(len(ra), -1).sum(1) == 0).sum()) if len(ra) else 0,
            "ours_empty": int((oa.reshape(len(oa), -1).sum(1) == 0).sum()) if len(oa) else 0}


def compare_predictions(release: Sequence[dict], ours: Sequence[dict], names: Sequence[str]) -> dict:
    """Per image: detections matched one to one (:func:`match_detections`). ``empty_images`` lists the images
    with no detection on either side; ``compared`` is False when that is every image."""
    images, problems, empty = [], [], []
    for name, r, o in zip(names, release, ours):
        m = match_detections(r, o)
        ious = [p[2] for p in m["pairs"]]
        ds = [p[3] for p in m["pairs"]]
        good = sum(1 for p in m["pairs"] if p[2] >= TOLERANCES["mask_iou"] and p[3] <= TOLERANCES["score_abs"])
        row = {"image": name, "release": m["release"], "ours": m["ours"], "matched": len(m["pairs"]),
               "within": good, "min_iou": min(ious, default=math.nan), "max_score_diff": max(ds, default=math.nan),
               "release_empty": m["release_empty"], "ours_empty": m["ours_empty"]}
        images.append(row)
        if m["release"] == m["ours"] == 0:
            empty.append(name)
        if m["release"] != m["ours"]:
            problems.append(f"predictions on {name}: release {m['release']} detections "
                            f"({m['release_empty']} empty masks), this suite {m['ours']} ({m['ours_empty']} empty)")
        if good < len(m["pairs"]):
            problems.append(f"predictions on {name}: {len(m['pairs']) - good} of {len(m['pairs'])} matched "
                            f"detections outside the tolerances (min mask IoU {row['min_iou']:.4f}, "
                            f"max score difference {row['max_score_diff']:.2e})")
    total = sum(r["release"] for r in images)
    return {"images": images, "release": total, "ours": sum(r["ours"] for r in images),
            "within": sum(r["within"] for r in images),
            "min_iou": min((r["min_iou"] for r in images if r["matched"]), default=math.nan),
            "max_score_diff": max((r["max_score_diff"] for r in images if r["matched"]), default=math.nan),
            "empty_images": empty, "compared": len(empty) < len(images), "problems": problems}


def compare_pipelines(release: Mapping[str, dict], ours: Mapping[str, dict]) -> dict:
    """Per photo and pipeline: the input tensor, boxes, labels, box masks and metas each stack produces."""
    rows, problems = [], []
    for photo in release:
        for kind in ("train", "test"):
            r, o = release[photo][kind], ours[photo][kind]
            row = {"photo": photo, "pipeline": kind, "shape_release": list(r["img"].shape),
                   "shape_ours": list(o["img"].shape)}
            where = f"{kind} pipeline on {photo}"
            if row["shape_release"] != row["shape_ours"]:
                problems.append(f"{where}: input {row['shape_release']} vs {row['shape_ours']}")
                row["input_max_abs"] = math.nan
            else:
                row["input_max_abs"] = float((r["img"].double() - o["img"].double()).abs().max())
                if not row["input_max_abs"] <= TOLERANCES["input_abs"]:
                    problems.append(f"{where}: inputs differ by up to {row['input_max_abs']:.3g}")
            for key in ("img_shape", "pad_shape", "flip"):
                if r["meta"][key] != o["meta"][key]:
                    problems.append(f"{where}: {key} {r['meta'][key]} vs {o['meta'][key]}")
            if not np.allclose(r["meta"]["scale_factor"][:2], o["meta"]["scale_factor"][:2], rtol=1e-6):
                problems.append(f"{where}: scale_factor {r['meta']['scale_factor'][:2]} vs "
                                f"{o['meta']['scale_factor'][:2]}")
            if kind == "train":
                row.update(_compare_targets(r, o, where, problems))
            rows.append(row)
    return {"rows": rows, "problems": problems,
            "max_input_abs": max((r["input_max_abs"] for r in rows), default=math.nan),
            "max_box_abs": max((r.get("box_max_abs", 0.0) for r in rows), default=math.nan),
            "box_mask_pixels": sum(r.get("box_mask_pixels", 0) for r in rows)}


def _compare_targets(r: dict, o: dict, where: str, problems: List[str]) -> dict:
    out = {"boxes_release": int(len(r["boxes"])), "boxes_ours": int(len(o["boxes"]))}
    if out["boxes_release"] != out["boxes_ours"]:
        problems.append(f"{where}: {out['boxes_release']} boxes vs {out['boxes_ours']}")
        return out
    out["box_max_abs"] = float((r["boxes"].double() - o["boxes"].double()).abs().max()) if len(r["boxes"]) else 0.0
    if not out["box_max_abs"] <= TOLERANCES["box_abs"]:
        problems.append(f"{where}: boxes differ by up to {out['box_max_abs']:.3g} px")
    if not bool((r["labels"] == o["labels"]).all()):
        problems.append(f"{where}: labels {r['labels'].tolist()} vs {o['labels'].tolist()}")
    rm, om = unpack_masks(r["box_masks"], r["box_masks_shape"]), unpack_masks(o["box_masks"], o["box_masks_shape"])
    if rm.shape != om.shape:
        problems.append(f"{where}: box masks {list(rm.shape)} vs {list(om.shape)}")
        return out
    diff = rm != om
    out["box_mask_pixels"] = int(diff.sum())
    out["box_mask_instances"] = int(diff.reshape(len(diff), -1).any(1).sum()) if len(diff) else 0
    if out["box_mask_pixels"]:
        problems.append(f"{where}: box masks differ in {out['box_mask_pixels']} pixels "
                        f"({out['box_mask_instances']} of {len(rm)} instances)")
    return out


def compare_all(release: dict, ours: dict, framework: str, model_type: str, image_names: Sequence[str]) -> dict:
    """The four comparisons of two sides' results (:mod:`apro.crosscheck.suite_side`'s ``results`` layout)."""
    losses = compare_losses(release["losses"], ours["losses"], framework)
    losses["total"] = {"release": release["total_loss"], "ours": ours["total_loss"]}
    return {"losses": losses,
            "grads": compare_grads(release["grads"], ours["grads"], rename_for(model_type),
                                   ours.get("grads_float64")),
            "predictions": compare_predictions(release["predictions"], ours["predictions"], image_names),
            "pipelines": compare_pipelines(release["pipelines"], ours["pipelines"])}


def verdict(parts: Mapping[str, dict]) -> str:
    """``differs`` when a comparison found a problem; ``incomplete`` when none did but no image had a
    detection on either side (no prediction was compared); else ``parity``."""
    if any(p.get("problems") for p in parts.values()):
        return "differs"
    return "incomplete" if not parts.get("predictions", {}).get("compared", True) else "parity"


def rename_for(model_type: str) -> Callable[[str], str]:
    from apro.checkpoints import rename

    return lambda key: rename(key, model_type)


def problems_of(parts: Mapping[str, dict]) -> List[str]:
    return [f"{part}: {p}" for part, d in parts.items() for p in d.get("problems", [])]

