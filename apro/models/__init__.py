"""mmdet plugin modules of the APro suite.

Load them from an mmdet config with::

    custom_imports = dict(imports=['apro.models'], allow_failed_imports=False)

Registered in mmdet's ``MODELS`` registry: ``BoxSOLOv2`` (detector) and
``BoxSOLOV2Head`` (box-supervised SOLOv2 head with APro's GP/LP terms). The
fully supervised baseline uses mmdet's own ``SOLOv2``/``SOLOV2Head``.
"""
from .box_losses import (box_masks_from_boxes, gp_loss, gp_soft_targets, lp_loss, lp_soft_targets,
                         masked_l1_loss, projection_loss)
from .box_solov2 import BoxSOLOv2, BoxSOLOV2Head

__all__ = ["BoxSOLOv2", "BoxSOLOV2Head", "box_masks_from_boxes", "gp_loss", "gp_soft_targets", "lp_loss",
           "lp_soft_targets", "masked_l1_loss", "projection_loss"]
