"""mmdet plugin modules of the APro suite.

Load them from an mmdet config with::

    custom_imports = dict(imports=['apro.models'], allow_failed_imports=False)

Registered in mmdet's ``MODELS`` registry: ``BoxSOLOv2`` (detector) and
``BoxSOLOV2Head`` (box-supervised SOLOv2 head with APro's GP/LP terms). The
fully supervised baseline uses mmdet's own ``SOLOv2``/``SOLOV2Head``.
``AProMaskFeatModule`` is the release's mask-feature branch for that head.
``BoxMask2Former`` / ``BoxMask2FormerHead`` (box-supervised Mask2Former with
GP/LP) and the matching cost ``BoxMatchingCost`` (``TASK_UTILS``) are in
:mod:`apro.models.mask2former_apro`.
"""
from apro.losses.box import (box_masks_from_boxes, gp_loss, gp_soft_targets, lp_loss, lp_soft_targets,
                         masked_l1_loss, projection_loss, release_box_masks)
from .box_solov2 import AProMaskFeatModule, BoxSOLOv2, BoxSOLOV2Head
from .mask2former_apro import BoxMask2Former, BoxMask2FormerHead, BoxMatchingCost

__all__ = ["AProMaskFeatModule", "BoxSOLOv2", "BoxSOLOV2Head", "BoxMask2Former", "BoxMask2FormerHead",
           "BoxMatchingCost", "box_masks_from_boxes", "gp_loss", "gp_soft_targets", "lp_loss",
           "lp_soft_targets", "masked_l1_loss", "projection_loss", "release_box_masks"]
