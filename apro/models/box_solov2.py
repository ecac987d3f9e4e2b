"""Box-supervised SOLOv2 with APro's pairwise terms, as mmdet 3.x plugin modules.

* :class:`BoxSOLOv2` -- mmdet's ``SOLOv2`` detector that also hands the
  (normalised) network input to the mask head, which needs it for the
  affinities;
* :class:`BoxSOLOV2Head` -- mmdet's ``SOLOV2Head`` with box-only targets and
  the box-supervised mask loss ``w_proj * L_proj + w_gp * L_gp + w_lp * L_lp``.

Network, forward pass and inference are mmdet's, unchanged. What differs is
the training target:

* the instance masks are never read (the configs do not even load them): the
  target of every positive grid cell is its GT **box** rasterised at the
  mask-feature resolution;
* the grid cells that are positive for an instance are SOLOv2's, with the box
  centre taking the place of the mask's centre of mass;
* the mask loss is the projection term (BoxInst's dice on the max projections
  onto the axes) plus APro's global (GP) and local (LP) propagation terms,
  each ``sum(|p - soft target| * box) / box area``, averaged over the positive
  instances. Each term is switched off by setting it to ``None``.

Guide image of the affinities: the network input as it enters the backbone
(mean/std normalised), bilinearly resized to the mask-feature size. This is
what BoxInstSeg's ``BoxSOLOv2Head`` does (its ``solo_target_single``
interpolates the detector's normalised ``img`` to each prediction size and
builds the tree on it); the APro release's SOLOv2 head appears to be that file with the
APro ops swapped in (its body was not available to check).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import SOLOV2Head
from mmdet.models.detectors import SOLOv2
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData
from torch import Tensor

from .box_losses import (box_masks_from_boxes, gp_soft_targets, loss_term_cfg, lp_soft_targets, masked_l1_loss,
                         projection_loss)
from .pairwise_baselines import (BOXINST_DEFAULTS, TREE_FILTER_DEFAULTS, boxinst_color_similarity,
                                 boxinst_pairwise_loss, rgb_to_lab, tree_filter_soft_targets)

__all__ = ["BoxSOLOv2", "BoxSOLOV2Head"]

_HEAD = "BoxSOLOV2Head"


@MODELS.register_module()
class BoxSOLOv2(SOLOv2):
    """mmdet's SOLOv2 that passes the network input to the mask head's loss.

    ``mask_head`` must accept ``batch_inputs`` in ``loss`` (e.g.
    :class:`BoxSOLOV2Head`). Inference is mmdet's.
    """

    def loss(self, batch_inputs: Tensor, batch_data_samples, **kwargs) -> dict:
        x = self.extract_feat(batch_inputs)
        # mean/std let the BoxInst term recover RGB colours (for Lab) from the normalised input
        pre = self.data_preprocessor
        kwargs.setdefault("pixel_mean", getattr(pre, "mean", None))
        kwargs.setdefault("pixel_std", getattr(pre, "std", None))
        return self.mask_head.loss(x, batch_data_samples, batch_inputs=batch_inputs, **kwargs)


@MODELS.register_module()
class BoxSOLOV2Head(SOLOV2Head):
    """SOLOv2 head trained from GT boxes only, with APro's GP and LP terms.

    Args (besides :class:`mmdet.models.dense_heads.SOLOV2Head`'s; its
    ``loss_mask`` is not used):
        loss_proj: ``dict(loss_weight=3.0)`` or None.
        loss_gp: ``dict(loss_weight=2.0, zetas=(0.01, 0.07))`` or None: pass 1
            guided by the image with ``zetas[0]``, pass 2 self-guided with
            ``zetas[1]``.
        loss_lp: ``dict(loss_weight=1.0, kernel_size=5, zeta=0.15,
            iterations=20)`` or None.
        pairwise_warmup_iters: the GP and LP weights ramp up linearly from 0
            over this many training iterations (0: no warm-up).
        loss_boxinst: BoxInst's colour-similarity pairwise term, ``dict(loss_weight=1.0,
            kernel_size=3, dilation=2, theta=2.0, color_thresh=0.3)`` or None (default);
            see :mod:`apro.models.pairwise_baselines`.
        loss_tree: the tree-filter (TEL) term, ``dict(loss_weight=2.0, zetas=(0.01, 0.07))``
            or None (default). Both ramp up with the same warm-up as GP and LP.
    """

    def __init__(self, *args,
                 loss_proj: Optional[dict] = dict(loss_weight=3.0),
                 loss_gp: Optional[dict] = dict(loss_weight=2.0, zetas=(0.01, 0.07)),
                 loss_lp: Optional[dict] = dict(loss_weight=1.0, kernel_size=5, zeta=0.15, iterations=20),
                 pairwise_warmup_iters: int = 0,
                 loss_boxinst: Optional[dict] = None,
                 loss_tree: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.loss_proj_cfg = loss_term_cfg(loss_proj, _HEAD, "loss_proj", dict(loss_weight=3.0))
        self.loss_gp_cfg = loss_term_cfg(loss_gp, _HEAD, "loss_gp", dict(loss_weight=2.0, zetas=(0.01, 0.07)))
        self.loss_lp_cfg = loss_term_cfg(loss_lp, _HEAD, "loss_lp",
                                         dict(loss_weight=1.0, kernel_size=5, zeta=0.15, iterations=20))
        if self.loss_gp_cfg is not None and len(tuple(self.loss_gp_cfg["zetas"])) < 1:
            raise ValueError("BoxSOLOV2Head: loss_gp.zetas must hold at least one bandwidth")
        if pairwise_warmup_iters < 0:
            raise ValueError(f"BoxSOLOV2Head: pairwise_warmup_iters must be >= 0, got {pairwise_warmup_iters}")
        self.pairwise_warmup_iters = int(pairwise_warmup_iters)
        self.loss_boxinst_cfg = loss_term_cfg(loss_boxinst, _HEAD, "loss_boxinst", BOXINST_DEFAULTS)
        self.loss_tree_cfg = loss_term_cfg(loss_tree, _HEAD, "loss_tree", TREE_FILTER_DEFAULTS)

    # ------------------------------------------------------------------ training

    def loss(self, x: Tuple[Tensor], batch_data_samples, positive_infos=None,
             batch_inputs: Optional[Tensor] = None, pixel_mean: Optional[Tensor] = None,
             pixel_std: Optional[Tensor] = None, **kwargs) -> dict:
        """Like ``BaseMaskHead.loss`` without touching GT masks (there are none)."""
        self._pixel_mean_std = (pixel_mean, pixel_std)
        if batch_inputs is None and self._needs_guide():
            raise ValueError("BoxSOLOV2Head.loss: batch_inputs (the network input) is needed by the GP/LP "
                             "terms; use the BoxSOLOv2 detector, which passes it")
        outs = self(x)
        batch_gt_instances, _, batch_img_metas = unpack_gt_instances(batch_data_samples)
        return self.loss_by_feat(*outs, batch_gt_instances=batch_gt_instances,
                                 batch_img_metas=batch_img_metas, batch_inputs=batch_inputs)

    def _get_targets_single(self, gt_instances: InstanceData, featmap_sizes: Optional[list] = None) -> tuple:
        """SOLOv2 targets of one image from its boxes (masks are never read).

        Returns, per level: ``(num_pos, h, w)`` uint8 box masks, the
        ``(num_grid, num_grid)`` category labels, the ``(num_grid**2,)``
        positive flags and the list of positive grid indexes.
        """
        gt_labels = gt_instances.labels
        device = gt_labels.device
        gt_bboxes = gt_instances.bboxes
        if hasattr(gt_bboxes, "tensor"):  # mmdet box structure
            gt_bboxes = gt_bboxes.tensor
        feat_h, feat_w = int(featmap_sizes[0]), int(featmap_sizes[1])
        upsampled_h, upsampled_w = feat_h * self.mask_stride, feat_w * self.mask_stride
        widths = gt_bboxes[:, 2] - gt_bboxes[:, 0]
        heights = gt_bboxes[:, 3] - gt_bboxes[:, 1]
        gt_areas = torch.sqrt(widths.clamp(min=0) * heights.clamp(min=0))
        box_masks = box_masks_from_boxes(gt_bboxes, feat_h, feat_w, self.mask_stride).to(torch.uint8)

        mlvl_pos_mask_targets, mlvl_labels, mlvl_pos_masks, mlvl_pos_indexes = [], [], [], []
        for (lower_bound, upper_bound), num_grid in zip(self.scale_ranges, self.num_grids):
            labels = torch.full((num_grid, num_grid), self.num_classes, dtype=torch.int64, device=device)
            pos_mask = torch.zeros(num_grid ** 2, dtype=torch.bool, device=device)
            pos_index: List[int] = []
            mask_target: List[Tensor] = []
            gt_inds = ((gt_areas >= lower_bound) & (gt_areas <= upper_bound)
                       & (widths > 0) & (heights > 0)).nonzero().flatten().tolist()
            for k in gt_inds:
                x0, y0, x1, y1 = (float(v) for v in gt_bboxes[k])
                center_h, center_w = 0.5 * (y0 + y1), 0.5 * (x0 + x1)
                half_h = 0.5 * (y1 - y0) * self.pos_scale
                half_w = 0.5 * (x1 - x0) * self.pos_scale

                def cell(v: float, size: int) -> int:
                    return int(v / size * num_grid // 1)

                coord_h, coord_w = cell(center_h, upsampled_h), cell(center_w, upsampled_w)
                top_box = max(0, cell(center_h - half_h, upsampled_h))
                down_box = min(num_grid - 1, cell(center_h + half_h, upsampled_h))
                left_box = max(0, cell(center_w - half_w, upsampled_w))
                right_box = min(num_grid - 1, cell(center_w + half_w, upsampled_w))
                top, down = max(top_box, coord_h - 1), min(down_box, coord_h + 1)
                left, right = max(coord_w - 1, left_box), min(right_box, coord_w + 1)

                labels[top:down + 1, left:right + 1] = gt_labels[k]
                for i in range(top, down + 1):
                    for j in range(left, right + 1):
                        index = i * num_grid + j
                        mask_target.append(box_masks[k])
                        pos_mask[index] = True
                        pos_index.append(index)
            if mask_target:
                mlvl_pos_mask_targets.append(torch.stack(mask_target, 0))
            else:
                mlvl_pos_mask_targets.append(torch.zeros((0, feat_h, feat_w), dtype=torch.uint8, device=device))
            mlvl_labels.append(labels)
            mlvl_pos_masks.append(pos_mask)
            mlvl_pos_indexes.append(pos_index)
        return mlvl_pos_mask_targets, mlvl_labels, mlvl_pos_masks, mlvl_pos_indexes

    def _needs_guide(self) -> bool:
        return any(c is not None for c in (self.loss_gp_cfg, self.loss_lp_cfg, self.loss_boxinst_cfg,
                                           self.loss_tree_cfg))

    def _pairwise_factor(self) -> float:
        if self.pairwise_warmup_iters <= 0:
            return 1.0
        try:
            it = int(MessageHub.get_current_instance().get_info("iter", 0) or 0)
        except Exception:  # pragma: no cover - no message hub outside a runner
            it = 0
        return min(1.0, float(it + 1) / self.pairwise_warmup_iters)

    def loss_by_feat(self, mlvl_kernel_preds: List[Tensor], mlvl_cls_preds: List[Tensor], mask_feats: Tensor,
                     batch_gt_instances, batch_img_metas: List[dict], batch_inputs: Optional[Tensor] = None,
                     **kwargs) -> Dict[str, Tensor]:
        feat_h, feat_w = mask_feats.shape[-2:]
        pos_mask_targets, labels, pos_masks, pos_indexes = [], [], [], []
        for gt_instances in batch_gt_instances:
            t, lab, pm, pi = self._get_targets_single(gt_instances, featmap_sizes=(feat_h, feat_w))
            pos_mask_targets.append(t)
            labels.append(lab)
            pos_masks.append(pm)
            pos_indexes.append(pi)

        # mask predictions of the positive cells: all levels, all images
        preds, targets, image_index = [], [], []
        for lvl, lvl_kernel_preds in enumerate(mlvl_kernel_preds):
            for img_id in range(lvl_kernel_preds.shape[0]):
                index = pos_indexes[img_id][lvl]
                if not index:
                    continue
                kernels = lvl_kernel_preds[img_id].reshape(lvl_kernel_preds.shape[1], -1)[:, index]
                kernels = kernels.permute(1, 0).reshape(len(index), -1, self.dynamic_conv_size,
                                                        self.dynamic_conv_size)
                preds.append(F.conv2d(mask_feats[img_id:img_id + 1], kernels, stride=1).view(-1, feat_h, feat_w))
                targets.append(pos_mask_targets[img_id][lvl])
                image_index.append(torch.full((len(index),), img_id, dtype=torch.int64))
        num_pos = sum(len(i) for img in pos_indexes for i in img)

        losses: Dict[str, Tensor] = {}
        zero = mask_feats.sum() * 0
        if num_pos > 0:
            mask_logits = torch.cat(preds, 0).unsqueeze(1)
            mask_scores = mask_logits.sigmoid()
            box_masks = torch.cat(targets, 0).unsqueeze(1).to(mask_scores.dtype)
            image_index_t = torch.cat(image_index, 0)
            guide = None
            if self._needs_guide():
                guide = F.interpolate(batch_inputs.detach().float(), size=(feat_h, feat_w),
                                      mode="bilinear", align_corners=False)
            factor = self._pairwise_factor()
            if self.loss_proj_cfg is not None:
                losses["loss_proj"] = self.loss_proj_cfg["loss_weight"] * \
                    projection_loss(mask_scores, box_masks).mean()
            if self.loss_gp_cfg is not None:
                soft = gp_soft_targets(mask_scores, guide, image_index_t, tuple(self.loss_gp_cfg["zetas"]))
                losses["loss_gp"] = factor * self.loss_gp_cfg["loss_weight"] * \
                    masked_l1_loss(mask_scores, soft, box_masks).mean()
            if self.loss_lp_cfg is not None:
                cfg = self.loss_lp_cfg
                soft = lp_soft_targets(mask_scores, guide, box_masks, image_index_t,
                                       cfg["kernel_size"], cfg["zeta"], cfg["iterations"])
                losses["loss_lp"] = factor * cfg["loss_weight"] * \
                    masked_l1_loss(mask_scores, soft, box_masks).mean()
            if self.loss_boxinst_cfg is not None:
                cfg = self.loss_boxinst_cfg
                mean, std = getattr(self, "_pixel_mean_std", (None, None))
                if mean is None or std is None:  # plain RGB input: no normalisation to undo
                    rgb = guide
                else:
                    rgb = guide * std.view(1, -1, 1, 1).to(guide) + mean.view(1, -1, 1, 1).to(guide)
                sim = boxinst_color_similarity(rgb_to_lab(rgb), cfg["kernel_size"], cfg["dilation"],
                                               cfg["theta"])
                losses["loss_boxinst"] = factor * cfg["loss_weight"] * boxinst_pairwise_loss(
                    mask_logits, box_masks, sim, image_index_t, cfg["kernel_size"], cfg["dilation"],
                    cfg["color_thresh"]).mean()
            if self.loss_tree_cfg is not None:
                soft = tree_filter_soft_targets(mask_scores, guide, image_index_t,
                                                tuple(self.loss_tree_cfg["zetas"]))
                losses["loss_tree"] = factor * self.loss_tree_cfg["loss_weight"] * \
                    masked_l1_loss(mask_scores, soft, box_masks).mean()
        else:
            for name in ("proj", "gp", "lp", "boxinst", "tree"):
                if getattr(self, f"loss_{name}_cfg") is not None:
                    losses[f"loss_{name}"] = zero

        flatten_labels = torch.cat([
            torch.cat([img_lvl_labels.flatten() for img_lvl_labels in lvl_labels])
            for lvl_labels in zip(*labels)])
        flatten_cls_preds = torch.cat([
            lvl_cls_preds.permute(0, 2, 3, 1).reshape(-1, self.num_classes) for lvl_cls_preds in mlvl_cls_preds])
        losses["loss_cls"] = self.loss_cls(flatten_cls_preds, flatten_labels, avg_factor=num_pos + 1)
        return losses
