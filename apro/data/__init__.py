"""Datasets: the built-in synthetic COCO generator (``apro.data.synthetic``) and
COCO json reading/writing (``apro.data.coco_io``).

Names are imported lazily, so ``import apro.data`` stays cheap and
``python -m apro.data.synthetic`` runs without a double-import warning.
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
