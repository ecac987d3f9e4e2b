"""The data layer: every dataset the suite writes or reads, for both tasks.

* :mod:`apro.data.synthetic` -- the built-in synthetic COCO dataset (``apro make-data``);
* :mod:`apro.data.coco_io` -- COCO json reading (checked), writing, masks as RLE;
* :mod:`apro.data.checks` -- what a dataset must hold before a training (errors) and what mmdet drops (counted);
* :mod:`apro.data.sparse_labels` -- dense / point / scribble label PNGs from instance masks
  (``apro make-sparse-labels``);
* :mod:`apro.data.coco_download` -- the public dataset archives and the COCO 2017 layout;
* :mod:`apro.data.voc` -- Pascal VOC 2012 + SBD: the instance set, the point / scribble labels and
  the semantic layout of the paper setting.

Names are imported lazily, so ``import apro.data`` stays cheap.
"""
import importlib

_EXPORTS = {
    "CATEGORIES": "synthetic",
    "generate": "synthetic",
    "load_coco_annotations": "coco_io",
    "dump_coco_json": "coco_io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
