"""Box-supervised Mask2Former with APro's pairwise terms, as mmdet 3.x plugin modules.

* :class:`BoxMask2Former` -- mmdet's ``Mask2Former`` detector that also hands
  the (normalised) network input to the head's loss (the affinities need it);
* :class:`BoxMask2FormerHead` -- mmdet's ``Mask2FormerHead`` trained from GT
  boxes only: per decoder layer (the last one and every intermediate one, as
  mmdet's own Mask2Former losses), ``w_cls * L_cls + w_proj * L_proj +
  w_gp * L_gp + w_lp * L_lp`` on the queries matched to a GT box;
* :class:`BoxMatchingCost` -- the release's box-based matching cost: the
  projection dice (squared denominators) between each query's mask and each GT
  box mask.

Network, forward pass and inference are mmdet's, unchanged. The training
targets and losses follow the APro release's ``Box2MaskHead``
(``mmdet/models/dense_heads/box2mask_head.py`` of CircleRadon/APro at 8251a9e,
"O:MH" below):

* the box masks are the release's: ``GenerateBoxMask`` on the loaded image,
  flipped, resized, cropped and padded with it by the pipeline (the paper
  configs; ``gt_instances.masks``, rectangles only), or, without masks, drawn
  here from the boxes the same way; the Hungarian matching upsamples the
  predictions to the padded input (O:MH:159-171); the losses use the box masks
  resized bilinearly to the prediction size (O:MH:292), so edge cells can hold
  0.5;
* projection: per matched instance, averaged over the matched instances;
* LP at the prediction resolution, guided by the input resized to it
  (O:MH:235, 298);
* GP on a ``size`` x ``size`` grid (96 in the release): the guide is the
  prediction-size input resized again (O:MH:271, 304), one tree per image,
  the soft targets are upsampled back (O:MH:309) and compared with the
  prediction resized down and up the same way (O:MH:305, 310);
* GP and LP are normalised by the total box area of all matched instances of
  the batch (O:MH:300-301, 313): an area-weighted pixel mean.

Each pairwise term is switched off by setting it to ``None``. The loss
helpers are :mod:`apro.losses.box` (shared with SOLOv2 and the semantic segmentor).
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import Mask2FormerHead
from mmdet.models.detectors import Mask2Former
from mmdet.models.task_modules.assigners.match_cost import BaseMatchCost
from mmdet.registry import MODELS, TASK_UTILS
from mmengine.structures import InstanceData
from torch import Tensor

from apro.losses.box import (LP_DEFAULTS, gp_soft_targets, loss_term_cfg, lp_soft_targets, mask_rows_cols,
                             projection_loss, release_box_masks)

__all__ = ["BoxMask2Former", "BoxMask2FormerHead", "BoxMatchingCost"]

#: the release's Mask2Former GP (O:MH): its own bandwidths, on a ``size`` x ``size`` grid
M2F_GP_DEFAULTS = MappingProxyType(dict(loss_weight=1.0, zetas=(0.03, 0.03), size=96))


@MODELS.register_module()
class BoxMask2Former(Mask2Former):
    """mmdet's Mask2Former that passes the network input to the head's loss."""

    def loss(self, batch_inputs: Tensor, batch_data_samples, **kwargs) -> dict:
        x = self.extract_feat(batch_inputs)
        return self.panoptic_head.loss(x, batch_data_samples, batch_inputs=batch_inputs)


@TASK_UTILS.register_module()
class BoxMatchingCost(BaseMatchCost):
    """The release's ``BoxMatchingCost`` (``mmdet/core/bbox/match_costs/match_cost.py:364-426``).

    For every (query, box) pair: ``dice(max_x p, max_x b) + dice(max_y p,
    max_y b)`` with ``dice(a, b) = 1 - (2 sum(a b) + eps) / (sum(a^2) + sum(b^2)
    + eps)``; ``p`` is a query's mask (sigmoid of the logits when ``pred_act``),
    ``b`` a GT box mask of the same size. Returns ``(num_queries, num_gts)``
    times ``weight``.
    """

    def __init__(self, weight: float = 1.0, pred_act: bool = False, eps: float = 1e-3) -> None:
        super().__init__(weight=weight)
        self.pred_act = pred_act
        self.eps = float(eps)

    def _dice(self, pred: Tensor, gt: Tensor) -> Tensor:
        numerator = 2 * pred @ gt.t()
        denominator = pred.pow(2).sum(-1)[:, None] + gt.pow(2).sum(-1)[None, :]
        return 1 - (numerator + self.eps) / (denominator + self.eps)

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        pred, gt = pred_instances.masks, gt_instances.masks.to(pred_instances.masks.dtype)
        if pred.dim() != 3 or gt.dim() != 3 or pred.shape[-2:] != gt.shape[-2:]:
            raise ValueError(f"BoxMatchingCost: expected (Q, H, W) predictions and (G, H, W) box masks of the "
                             f"same size, got {tuple(pred.shape)} and {tuple(gt.shape)}")
        if self.pred_act:
            pred = pred.sigmoid()
        cost = self._dice(pred.amax(dim=2), gt.amax(dim=2)) + self._dice(pred.amax(dim=1), gt.amax(dim=1))
        return cost * self.weight


@MODELS.register_module()
class BoxMask2FormerHead(Mask2FormerHead):
    """Mask2Former head trained from GT boxes only, with APro's GP and LP terms.

    Args (besides :class:`mmdet.models.dense_heads.Mask2FormerHead`'s; its
    ``loss_mask`` / ``loss_dice`` are built but not used):
        loss_proj: ``dict(loss_weight=5.0)``: the projection term.
        loss_gp: ``dict(loss_weight=1.0, zetas=(0.03, 0.03), size=96)``:
            global propagation on a ``size`` x ``size`` grid, one pass per zeta
            (the first guided by the image, the rest by the previous output).
        loss_lp: ``dict(loss_weight=1.0, kernel_size=5, zeta=0.15, iterations=20)``.
    """

    def __init__(self, *args, loss_proj: Optional[dict] = dict(loss_weight=5.0),
                 loss_gp: Optional[dict] = dict(loss_weight=1.0), loss_lp: Optional[dict] = dict(loss_weight=1.0),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        head = "BoxMask2FormerHead"
        self.loss_proj_cfg = loss_term_cfg(loss_proj, head, "loss_proj", dict(loss_weight=5.0))
        self.loss_gp_cfg = loss_term_cfg(loss_gp, head, "loss_gp", M2F_GP_DEFAULTS)
        self.loss_lp_cfg = loss_term_cfg(loss_lp, head, "loss_lp", LP_DEFAULTS)
        if self.loss_gp_cfg is not None:
            if len(tuple(self.loss_gp_cfg["zetas"])) < 1:
                raise ValueError("BoxMask2FormerHead: loss_gp.zetas must hold at least one bandwidth")
            if int(self.loss_gp_cfg["size"]) < 2:
                raise ValueError(f"BoxMask2FormerHead: loss_gp.size must be >= 2, got {self.loss_gp_cfg['size']}")

    # ------------------------------------------------------------------ training

    def loss(self, x: Tuple[Tensor], batch_data_samples, batch_inputs: Optional[Tensor] = None) -> dict:
        """Like ``MaskFormerHead.loss``, with box masks in place of the GT masks (never read)."""
        if batch_inputs is None and (self.loss_gp_cfg is not None or self.loss_lp_cfg is not None):
            raise ValueError("BoxMask2FormerHead.loss: batch_inputs (the network input) is needed by the GP/LP "
                             "terms; use the BoxMask2Former detector, which passes it")
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        all_cls_scores, all_mask_preds = self(x, batch_data_samples)
        in_h, in_w = batch_img_metas[0]["batch_input_shape"]
        batch_gt_instances = []
        for s in batch_data_samples:
            gt = s.gt_instances
            boxes = gt.bboxes.tensor if hasattr(gt.bboxes, "tensor") else gt.bboxes
            masks = self._box_masks(gt, boxes.reshape(-1, 4), in_h, in_w, s.metainfo.get("img_shape"))
            batch_gt_instances.append(InstanceData(labels=gt.labels, bboxes=boxes, masks=masks.to(boxes.device)))
        guides = self._guides(batch_inputs, tuple(all_mask_preds[0].shape[-2:]))
        return self.loss_by_feat(all_cls_scores, all_mask_preds, batch_gt_instances, batch_img_metas, guides)

    @staticmethod
    def _box_masks(gt: InstanceData, boxes: Tensor, in_h: int, in_w: int, img_shape) -> Tensor:
        """The box masks on the padded input: the pipeline's (GenerateBoxMask drawn on the image, then
        flipped, resized, cropped and padded with it, O:LOAD:652-663), or, without masks, drawn here from
        the boxes as GenerateBoxMask draws them; the matching and the losses resize them."""
        masks = gt.get("masks", None)
        if masks is None:
            return release_box_masks(boxes, in_h, in_w, image_shape=img_shape)
        masks = masks.to_tensor(torch.bool, boxes.device) if hasattr(masks, "to_tensor") else masks.bool()
        mask_rows_cols(masks, "BoxMask2FormerHead: gt_instances.masks")  # box masks only, never instance masks
        if tuple(masks.shape[-2:]) != (in_h, in_w):
            masks = F.pad(masks, (0, in_w - masks.shape[-1], 0, in_h - masks.shape[-2]))
        return masks.to(torch.float32)

    @torch.no_grad()
    def _guides(self, batch_inputs: Optional[Tensor], mask_size: Tuple[int, int]) -> dict:
        """Guide images (and GP's trees) shared by every decoder layer."""
        out: Dict[str, Tensor] = {}
        if batch_inputs is None:
            return out
        # the input at the prediction size (O:MH:235); GP resizes that once more (O:MH:271, 304)
        out["lp"] = F.interpolate(batch_inputs.detach().float(), size=mask_size, mode="bilinear",
                                  align_corners=False)
        if self.loss_gp_cfg is not None:
            from apro.ops import minimum_spanning_tree

            size = int(self.loss_gp_cfg["size"])
            out["gp"] = F.interpolate(out["lp"], size=(size, size), mode="bilinear", align_corners=False)
            out["gp_tree"] = minimum_spanning_tree(out["gp"])  # one tree per image
        return out

    def _get_targets_single(self, cls_score: Tensor, mask_pred: Tensor, gt_instances: InstanceData,
                            img_meta: dict) -> Tuple[Tensor]:
        """Hungarian matching of the predictions, upsampled to the box masks' size (O:MH:159-171)."""
        gt_labels, gt_masks = gt_instances.labels, gt_instances.masks
        with torch.no_grad():
            pred_full = F.interpolate(mask_pred[:, None], size=gt_masks.shape[-2:], mode="bilinear",
                                      align_corners=False)[:, 0]
            assign_result = self.assigner.assign(
                pred_instances=InstanceData(scores=cls_score, masks=pred_full),
                gt_instances=InstanceData(labels=gt_labels, masks=gt_masks), img_meta=img_meta)
        sampling_result = self.sampler.sample(assign_result=assign_result,
                                              pred_instances=InstanceData(scores=cls_score, masks=mask_pred),
                                              gt_instances=gt_instances)
        pos_inds, neg_inds = sampling_result.pos_inds, sampling_result.neg_inds
        labels = gt_labels.new_full((self.num_queries,), self.num_classes, dtype=torch.long)
        labels[pos_inds] = gt_labels[sampling_result.pos_assigned_gt_inds]
        label_weights = gt_labels.new_ones((self.num_queries,))
        mask_targets = gt_masks[sampling_result.pos_assigned_gt_inds]
        mask_weights = mask_pred.new_zeros((self.num_queries,))
        mask_weights[pos_inds] = 1.0
        return labels, label_weights, mask_targets, mask_weights, pos_inds, neg_inds, sampling_result

    def _loss_by_feat_single(self, cls_scores: Tensor, mask_preds: Tensor, batch_gt_instances: List[InstanceData],
                             batch_img_metas: List[dict], guides: dict) -> Dict[str, Tensor]:
        num_imgs = cls_scores.size(0)
        (labels_list, label_weights_list, mask_targets_list, mask_weights_list,
         _) = self.get_targets([cls_scores[i] for i in range(num_imgs)],
                               [mask_preds[i] for i in range(num_imgs)],
                               batch_gt_instances, batch_img_metas)
        labels = torch.stack(labels_list, dim=0).flatten(0, 1)
        label_weights = torch.stack(label_weights_list, dim=0).flatten(0, 1)
        mask_weights = torch.stack(mask_weights_list, dim=0)
        flat_scores = cls_scores.flatten(0, 1)
        class_weight = flat_scores.new_tensor(self.class_weight)
        losses = {"loss_cls": self.loss_cls(flat_scores, labels, label_weights,
                                            avg_factor=class_weight[labels].sum())}

        pos = mask_weights > 0
        logits = mask_preds[pos]  # (K, h, w), image-major like the targets
        if logits.shape[0] == 0:
            zero = mask_preds.sum() * 0
            for name in ("proj", "gp", "lp"):
                if getattr(self, f"loss_{name}_cfg") is not None:
                    losses[f"loss_{name}"] = zero
            return losses
        pred_shape = logits.shape[-2:]
        scores = logits.sigmoid().unsqueeze(1)
        # full-resolution box masks, resized bilinearly to the predictions (O:MH:292)
        box_masks = F.interpolate(torch.cat(mask_targets_list, dim=0).unsqueeze(1).to(scores.dtype), pred_shape,
                                  mode="bilinear", align_corners=False)
        image_index = pos.nonzero()[:, 0].to(torch.int64)
        # of all matched instances of the batch (O:MH:300); the floor only guards a batch of sub-pixel boxes
        box_area = box_masks.sum().clamp(min=1.0)

        if self.loss_proj_cfg is not None:
            losses["loss_proj"] = self.loss_proj_cfg["loss_weight"] * projection_loss(scores, box_masks).mean()
        if self.loss_lp_cfg is not None:
            cfg = self.loss_lp_cfg
            soft = lp_soft_targets(scores, guides["lp"], box_masks, image_index,
                                   cfg["kernel_size"], cfg["zeta"], cfg["iterations"])
            losses["loss_lp"] = cfg["loss_weight"] * ((scores - soft).abs() * box_masks).sum() / box_area
        if self.loss_gp_cfg is not None:
            size = int(self.loss_gp_cfg["size"])
            small = F.interpolate(scores, size=(size, size), mode="bilinear", align_corners=False)
            soft = gp_soft_targets(small.detach(), guides["gp"], image_index, tuple(self.loss_gp_cfg["zetas"]),
                                   tree=guides["gp_tree"])
            soft = F.interpolate(soft, size=pred_shape, mode="bilinear", align_corners=False)
            # the prediction down- and up-sampled through the GP grid, with its gradient (O:MH:305, 310)
            scaled = F.interpolate(small, size=pred_shape, mode="bilinear", align_corners=False)
            losses["loss_gp"] = self.loss_gp_cfg["loss_weight"] * \
                ((soft - scaled).abs() * box_masks).sum() / box_area
        return losses

    def loss_by_feat(self, all_cls_scores: Sequence[Tensor], all_mask_preds: Sequence[Tensor],
                     batch_gt_instances: List[InstanceData], batch_img_metas: List[dict],
                     guides: Optional[dict] = None) -> Dict[str, Tensor]:
        """The last decoder layer's losses as ``loss_*``, layer i's as ``d{i}.loss_*``."""
        guides = guides or {}
        per_layer = [self._loss_by_feat_single(c, m, batch_gt_instances, batch_img_metas, guides)
                     for c, m in zip(all_cls_scores, all_mask_preds)]
        out: Dict[str, Tensor] = dict(per_layer[-1])
        for i, layer in enumerate(per_layer[:-1]):
            out.update({f"d{i}.{k}": v for k, v in layer.items()})
        return out
