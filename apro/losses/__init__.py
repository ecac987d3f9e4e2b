"""APro's losses as plain torch functions, shared by the mmdet and mmseg plugins and usable in any network.

* :mod:`apro.losses.box` -- the box-supervised terms: projection, GP and LP soft targets, the masked
  L1, box masks (the release's and cell-centre rasterisation), the loss-term settings helper;
* :mod:`apro.losses.baselines` -- other pairwise terms for the ablations: BoxInst's colour similarity,
  the tree filter of the tree energy loss.

Nothing here imports mmdet or mmseg.
"""
