"""Import path of the original release (``apro.gp_cuda.mst.mst``); the ops
themselves live in :mod:`apro.ops` and run on any device."""
