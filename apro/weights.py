"""Model files the workflow downloads: the paper configs' ImageNet-pretrained backbone weights and the APro
release's model-zoo checkpoints; where they come from, fetching, checking.

    apro fetch resnet50-11ad3fa6.pth --out weights/resnet50-11ad3fa6.pth

Every paper config names its backbone checkpoint as ``weights/<file>``; the
workflow's ``fetch_weights`` rule downloads it from the public release URL
below and checks it before it lands there (atomically: a partial download
never looks finished). Checksums: torchvision's release files carry the first
8 hex digits of their sha256 in the name (torch.hub's convention), checked as
a sha256 prefix; the Swin releases and the APro release's checkpoints
(``released/<file>.pth``, fetched for the ``released`` suite) publish none.
Wherever the full sha256 is not published, it is recorded next to the file
(``<file>.sha256``) on first download and checked afterwards (this project's
machines cannot reach the download hosts, so no full digest is written here).
Every one of these files is then loaded weights-only (:mod:`apro.checkpoints`).

Nothing here imports torch.
"""
from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Dict, List, Optional, Union

from apro import layout
from apro.downloads import FetchError, check_digest, fetch  # noqa: F401  (re-exported)

#: file name -> (release URL, sha256 or its published prefix, or None when none is published)
WEIGHTS: Dict[str, Dict[str, Optional[str]]] = {
    # the files the APro release's configs name (SOLOv2 and Mask2Former alike): torchvision's
    # IMAGENET1K_V2 ResNet-50 and the ResNet-101 of its new training recipe
    "resnet50-11ad3fa6.pth": {"url": "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
                              "sha256": "11ad3fa6"},
    "resnet101-b641f3a9.pth": {"url": "https://download.pytorch.org/models/resnet101-b641f3a9.pth",
                               "sha256": "b641f3a9"},
    # Swin official releases (ImageNet-1k Swin-T, ImageNet-22k Swin-L at 384)
    "swin_tiny_patch4_window7_224.pth": {
        "url": "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth",
        "sha256": None},
    "swin_large_patch4_window12_384_22k.pth": {
        "url": "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/"
               "swin_large_patch4_window12_384_22k.pth",
        "sha256": None},
    # the semantic paper configs (experiments/semantic/_base_paper_voc.py): OpenMMLab's ResNet-101 V1c
    # (deep stem), what mmseg's open-mmlab://resnet101_v1c names (mmengine/hub/openmmlab.json); the
    # name's 8 hex digits are not documented as a sha256 prefix, so the checksum is recorded on first download
    "resnet101_v1c-e67eebb6.pth": {
        "url": "https://download.openmmlab.com/pretrain/third_party/resnet101_v1c-e67eebb6.pth",
        "sha256": None},
}
#: the APro release's model-zoo checkpoints (its README's links; no checksum is published, so the
#: sha256 is recorded on first download and enforced after); experiments/registry.yaml: released
_RELEASE = "https://huggingface.co/CircleRadon/APro/resolve/main/"
_RELEASED = {"solov2_checkpoint": ("solov2_voc_r50_36epoch", "solov2_voc_r101_36epoch", "solov2_coco_r50_36epoch",
                                   "solov2_coco_r101_36epoch"),
             "mask2former_checkpoint": ("mask2former_voc_r50_50epoch", "mask2former_voc_r101_50epoch",
                                        "mask2former_voc_swinl_50epoch", "mask2former_coco_r50_50epoch",
                                        "mask2former_coco_r101_50epoch", "mask2former_coco_swinl_50epoch")}
WEIGHTS.update({f"released/{name}.pth": {"url": f"{_RELEASE}{folder}/{name}.pth", "sha256": None}
                for folder, names in _RELEASED.items() for name in names})


def fetch_weights(name: str, out: Union[None, str, os.PathLike] = None, url: Optional[str] = None) -> str:
    if name not in WEIGHTS:
        raise FetchError(f"unknown weights file {name!r}; known: {', '.join(WEIGHTS)}")
    spec = WEIGHTS[name]
    return fetch(url or spec["url"], out or layout.weights_file(name), spec["sha256"], "sha256",
                 what=f"{'released checkpoint' if name.startswith('released/') else 'backbone weights'} {name}")


def weights_in_config(config: Union[str, os.PathLike]) -> List[str]:
    """The ``weights/<file>`` paths a config (and its local bases) names, e.g. as its backbone checkpoint."""
    from apro.registry import config_files

    found: List[str] = []
    for path in config_files(config):
        try:
            tree = ast.parse(Path(path).read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value.startswith(layout.weights_file("")) and node.value not in found:
                found.append(node.value)
    return found
