"""APro: label-efficient segmentation via affinity propagation.

The ops (:mod:`apro.ops`) and the original API::

    from apro import Global_APro, Local_APro, MinimumSpanningTree

Names load lazily, so ``import apro`` (the CLI, data tools) works before the
compiled ops are built.
"""
import importlib

_EXPORTS = {
    "Global_APro": "apro.apro",
    "Local_APro": "apro.apro",
    "MinimumSpanningTree": "apro.gp_cuda.mst.mst",
    "global_propagate": "apro.ops",
    "local_propagate": "apro.ops",
    "minimum_spanning_tree": "apro.ops",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
