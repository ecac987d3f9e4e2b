"""Box-supervised SOLOv2 with APro's pairwise terms, as mmdet 3.x plugin modules.

* :class:`BoxSOLOv2` -- mmdet's ``SOLOv2`` detector that also hands the
  (normalised) network input to the mask head, which needs it for the
  affinities;
* :class:`BoxSOLOV2Head` -- mmdet's ``SOLOV2Head`` with box-only targets and
  the box-supervised mask loss ``w_proj * L_proj + w_gp * L_gp + w_lp * L_lp``;
* :class:`AProMaskFeatModule` -- the mask-feature branch as the APro release
  builds it (no norm, no bias, a plain 1x1 output conv).

Forward pass and inference are mmdet's ``SOLOV2Head``'s (the same algorithm
as the release's ``get_seg``). The architecture is the config's: the paper
configs build the release's head (256-channel towers, ``conv_kernel_size=1``,
``AProMaskFeatModule``) so that every parameter has the release's shape; the
demo keeps mmdet's. What differs from mmdet is the training target:

* instance masks are never loaded: the target of every positive grid cell is
  its GT **box**, as the box mask the release's ``GenerateBoxMask`` draws on
  the loaded image and the pipeline resizes and flips with it (the paper
  configs, ``apro.data.transforms``; the head reads ``gt_instances.masks`` and
  refuses masks that are not rectangles), or, without masks, drawn here from
  the boxes the same way;
* the mask loss is the projection term (BoxInst's dice on the max projections
  onto the axes) plus APro's global (GP) and local (LP) propagation terms,
  each ``sum(|p - soft target| * box) / box area``, averaged over the positive
  instances of all levels. Each term is switched off by setting it to ``None``.

The loss layout follows the APro release's ``BoxSOLOv2Head``
(``mmdet/models/dense_heads/box_solov2_head.py`` of CircleRadon/APro at
8251a9e, "O:SH" below) unless a config pins otherwise:

* ``loss_strides=(4, 4, 8, 16, 16)``: level i's mask predictions are resized
  bilinearly to stride ``loss_strides[i]`` (O:SH:213-214), and its box masks,
  guide image, tree and LP run at that size (O:SH:392, 413, 436). The box mask
  is downsampled as ``mmcv.imrescale`` does (bilinear, rounded).
  ``loss_strides=None``: every level at the mask-feature grid, with boxes
  rasterised by cell centre (the demo's layout);
* ``min_box_pixels=10``: an instance whose box mask has fewer pixels is not a
  positive (O:SH:416-417);
* the positive cells are SOLOv2's around the box mask's centre of mass, in
  the release's arithmetic; a cell claimed by two instances predicts the
  last one's mask (one positive, O:SH:435-443).

Guide image of the affinities: the network input as it enters the backbone
(mean/std normalised, padded), bilinearly resized to the loss size, as the
release's ``solo_target_single`` does (O:SH:392).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.models.dense_heads import SOLOV2Head
from mmdet.models.dense_heads.solov2_head import MaskFeatModule
from mmdet.models.detectors import SOLOv2
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData
from torch import Tensor

from apro.losses.box import (GP_DEFAULTS, LP_DEFAULTS, box_masks_from_boxes, box_rows_cols, gp_soft_targets,
                             loss_term_cfg, lp_soft_targets, mask_rows_cols, masked_l1_loss, projection_loss,
                             rescale_rows_cols)
from apro.losses.baselines import (BOXINST_DEFAULTS, TREE_FILTER_DEFAULTS, boxinst_color_similarity,
                                 boxinst_pairwise_loss, rgb_to_lab, tree_filter_soft_targets)

__all__ = ["AProMaskFeatModule", "BoxSOLOv2", "BoxSOLOV2Head"]

_HEAD = "BoxSOLOV2Head"
#: the APro release's loss stride of each level: ``featmap_size * 2`` of strides 8, 8, 16, 32, 32 (O:SH:214)
RELEASE_LOSS_STRIDES = (4, 4, 8, 16, 16)


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
class AProMaskFeatModule(MaskFeatModule):
    """SOLOv2's mask-feature branch as the APro release builds it (O:SH:79-128, 160-161, 199-204).

    The same layout as mmdet's ``MaskFeatModule`` (level i: i blocks of 3x3 conv
    + ReLU + 2x upsampling, coordinates added at the last level, the levels
    summed), but the release builds its 3x3 convs with ``norm_cfg=None`` and
    ``bias=False`` and predicts with a plain ``nn.Conv2d`` 1x1 (with bias, no
    norm, no activation). ``norm_cfg`` must be None.
    """

    def _init_layers(self) -> None:
        if self.norm_cfg is not None:
            raise ValueError(f"AProMaskFeatModule: the release's mask branch has no norm; got norm_cfg={self.norm_cfg}")

        def conv(in_channels: int) -> ConvModule:
            return ConvModule(in_channels, self.feat_channels, 3, padding=1, conv_cfg=self.conv_cfg, norm_cfg=None,
                              bias=False, inplace=False)

        self.convs_all_levels = nn.ModuleList()
        for i in range(self.start_level, self.end_level + 1):
            level = nn.Sequential()
            for j in range(max(i, 1)):
                if j > 0:
                    chn = self.feat_channels
                else:  # the coordinates join the last level's input (O:SH:96-97)
                    chn = self.in_channels + 2 if 0 < i == self.end_level else self.in_channels
                level.add_module(f"conv{j}", conv(chn))
                if i > 0:
                    level.add_module(f"upsample{j}", nn.Upsample(scale_factor=2, mode="bilinear",
                                                                 align_corners=False))
            self.convs_all_levels.append(level)
        self.conv_pred = nn.Conv2d(self.feat_channels, self.out_channels, 1, padding=0)


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
        loss_strides: the stride at which each level's mask loss is computed
            (default: the release's ``(4, 4, 8, 16, 16)``), or None: every level
            at the mask-feature grid (see the module docstring).
        min_box_pixels: instances whose box mask has fewer pixels are no
            positives (the release: 10; 0 keeps every box).
        conv_kernel_size: spatial size of the kernel-prediction conv
            ``conv_kernel`` (mmdet: 3; the release's ``solo_kernel``: 1).
        mask_feature_head: as mmdet's; ``type='AProMaskFeatModule'`` builds the
            release's mask branch instead of mmdet's ``MaskFeatModule``.
        pairwise_warmup_iters: the GP and LP weights ramp up linearly from 0
            over this many training iterations (0: no warm-up; not in the release).
        loss_boxinst: BoxInst's colour-similarity pairwise term, ``dict(loss_weight=1.0,
            kernel_size=3, dilation=2, theta=2.0, color_thresh=0.3)`` or None (default);
            see :mod:`apro.losses.baselines`.
        loss_tree: the tree-filter (TEL) term, ``dict(loss_weight=2.0, zetas=(0.01, 0.07))``
            or None (default). Both ramp up with the same warm-up as GP and LP.
    """

    def __init__(self, *args,
                 mask_feature_head: dict,
                 loss_proj: Optional[dict] = dict(loss_weight=3.0),
                 loss_gp: Optional[dict] = dict(GP_DEFAULTS),
                 loss_lp: Optional[dict] = dict(LP_DEFAULTS),
                 loss_strides: Optional[Sequence[int]] = RELEASE_LOSS_STRIDES,
                 min_box_pixels: int = 10,
                 conv_kernel_size: int = 3,
                 pairwise_warmup_iters: int = 0,
                 loss_boxinst: Optional[dict] = None,
                 loss_tree: Optional[dict] = None,
                 **kwargs) -> None:
        if conv_kernel_size < 1 or conv_kernel_size % 2 == 0:
            raise ValueError(f"{_HEAD}: conv_kernel_size must be a positive odd number, got {conv_kernel_size}")
        self.conv_kernel_size = int(conv_kernel_size)  # read by _init_layers, which super().__init__ calls
        mask_feature_head = ConfigDict(mask_feature_head)  # a copy; mmdet's __init__ sets its in_channels
        feat_type = mask_feature_head.pop("type", None)
        super().__init__(*args, mask_feature_head=mask_feature_head, **kwargs)
        if feat_type is not None:  # mmdet builds MaskFeatModule itself; replace it with the one asked for
            self.mask_feature_head = MODELS.build(dict(type=feat_type, **mask_feature_head))
            self.mask_stride = self.mask_feature_head.mask_stride
        self.loss_proj_cfg = loss_term_cfg(loss_proj, _HEAD, "loss_proj", dict(loss_weight=3.0))
        self.loss_gp_cfg = loss_term_cfg(loss_gp, _HEAD, "loss_gp", GP_DEFAULTS)
        self.loss_lp_cfg = loss_term_cfg(loss_lp, _HEAD, "loss_lp", LP_DEFAULTS)
        if self.loss_gp_cfg is not None and len(tuple(self.loss_gp_cfg["zetas"])) < 1:
            raise ValueError("BoxSOLOV2Head: loss_gp.zetas must hold at least one bandwidth")
        if loss_strides is not None:
            loss_strides = tuple(int(s) for s in loss_strides)
            if len(loss_strides) != self.num_levels or min(loss_strides) < 1:
                raise ValueError(f"{_HEAD}: loss_strides must give one positive stride per level "
                                 f"({self.num_levels}), got {loss_strides}")
        self.loss_strides = loss_strides
        if min_box_pixels < 0:
            raise ValueError(f"{_HEAD}: min_box_pixels must be >= 0, got {min_box_pixels}")
        self.min_box_pixels = int(min_box_pixels)
        if pairwise_warmup_iters < 0:
            raise ValueError(f"BoxSOLOV2Head: pairwise_warmup_iters must be >= 0, got {pairwise_warmup_iters}")
        self.pairwise_warmup_iters = int(pairwise_warmup_iters)
        self.loss_boxinst_cfg = loss_term_cfg(loss_boxinst, _HEAD, "loss_boxinst", BOXINST_DEFAULTS)
        self.loss_tree_cfg = loss_term_cfg(loss_tree, _HEAD, "loss_tree", TREE_FILTER_DEFAULTS)

    def _init_layers(self) -> None:
        super()._init_layers()
        if self.conv_kernel_size != 3:
            self.conv_kernel = nn.Conv2d(self.feat_channels, self.kernel_out_channels, self.conv_kernel_size,
                                         padding=self.conv_kernel_size // 2)

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

    def loss_sizes(self, feat_h: int, feat_w: int) -> List[Tuple[int, int]]:
        """The ``(h, w)`` of each level's mask loss for a mask-feature map of ``feat_h x feat_w``."""
        if self.loss_strides is None:
            return [(feat_h, feat_w)] * self.num_levels
        in_h, in_w = feat_h * self.mask_stride, feat_w * self.mask_stride
        return [(max(1, in_h // s), max(1, in_w // s)) for s in self.loss_strides]

    def _get_targets_single(self, gt_instances: InstanceData, featmap_sizes: Optional[list] = None,
                            img_shape: Optional[Sequence[int]] = None) -> tuple:
        """SOLOv2 targets of one image from its boxes (masks are never read).

        ``img_shape`` is the image's ``(h, w)`` inside the padded input (default: all of it); the
        release draws its box masks on the image, so they stop at its border. Returns, per level:
        ``(num_pos, h, w)`` uint8 box masks at the level's loss size (:meth:`loss_sizes`), the
        ``(num_grid, num_grid)`` category labels, the ``(num_grid**2,)`` positive flags and the list of
        positive grid indexes (ascending, as the release's flags give them).
        """
        gt_labels = gt_instances.labels
        device = gt_labels.device
        gt_bboxes = gt_instances.bboxes
        if hasattr(gt_bboxes, "tensor"):  # mmdet box structure
            gt_bboxes = gt_bboxes.tensor
        feat_h, feat_w = int(featmap_sizes[0]), int(featmap_sizes[1])
        upsampled_h, upsampled_w = feat_h * self.mask_stride, feat_w * self.mask_stride
        img_h, img_w = (upsampled_h, upsampled_w) if img_shape is None else (int(img_shape[0]), int(img_shape[1]))
        widths = gt_bboxes[:, 2] - gt_bboxes[:, 0]
        heights = gt_bboxes[:, 3] - gt_bboxes[:, 1]
        gt_areas = torch.sqrt(widths.clamp(min=0) * heights.clamp(min=0))
        sizes = self.loss_sizes(feat_h, feat_w)
        if self.loss_strides is None:
            masks_of_size = {sizes[0]: box_masks_from_boxes(gt_bboxes, feat_h, feat_w, self.mask_stride)}
            centres = None  # the box centre, below
            keep = (widths > 0) & (heights > 0)
        else:  # the release's box masks: GenerateBoxMask's, from the pipeline or drawn here (O:LOAD:654-658)
            rows, cols = self._box_rows_cols(gt_instances, gt_bboxes, upsampled_h, upsampled_w, (img_h, img_w))
            masks_of_size = {s: rescale_rows_cols(rows, cols, s) for s in set(sizes)}
            ys = torch.arange(rows.shape[1], dtype=torch.float64, device=rows.device)
            xs = torch.arange(cols.shape[1], dtype=torch.float64, device=cols.device)
            n_rows, n_cols = rows.double().sum(1), cols.double().sum(1)
            # the mask's centre of mass (O:SH:420), float64 as scipy's
            centres = torch.stack([(rows.double() * ys).sum(1) / n_rows.clamp(min=1),
                                   (cols.double() * xs).sum(1) / n_cols.clamp(min=1)], 1)
            keep = n_rows * n_cols >= max(self.min_box_pixels, 1)
        # the release's half sizes: float32 tensors (O:SH:410-411), whose arithmetic the cell bounds inherit
        half_hs = 0.5 * (gt_bboxes[:, 3] - gt_bboxes[:, 1]).float() * self.pos_scale
        half_ws = 0.5 * (gt_bboxes[:, 2] - gt_bboxes[:, 0]).float() * self.pos_scale

        mlvl_pos_mask_targets, mlvl_labels, mlvl_pos_masks, mlvl_pos_indexes = [], [], [], []
        for (lower_bound, upper_bound), num_grid, size in zip(self.scale_ranges, self.num_grids, sizes):
            box_masks = masks_of_size[size].to(torch.uint8)
            labels = torch.full((num_grid, num_grid), self.num_classes, dtype=torch.int64, device=device)
            owner: Dict[int, int] = {}  # grid cell -> the instance whose mask it predicts: the last one (O:SH:439-443)
            gt_inds = ((gt_areas >= lower_bound) & (gt_areas <= upper_bound) & keep).nonzero().flatten().tolist()
            cell = 1.0 / num_grid
            for k in gt_inds:
                if centres is None:
                    x0, y0, x1, y1 = (float(v) for v in gt_bboxes[k])
                    center_h, center_w = 0.5 * (y0 + y1), 0.5 * (x0 + x1)
                else:
                    center_h, center_w = float(centres[k, 0]), float(centres[k, 1])
                half_h, half_w = half_hs[k], half_ws[k]
                # the release's arithmetic (O:SH:421-428): x // (1 / num_grid), the centre in float64, the
                # box bounds in float32; "x * num_grid" rounds otherwise at cell borders
                coord_h = int((center_h / upsampled_h) // cell)
                coord_w = int((center_w / upsampled_w) // cell)
                top_box = max(0, int(((center_h - half_h) / upsampled_h) // cell))
                down_box = min(num_grid - 1, int(((center_h + half_h) / upsampled_h) // cell))
                left_box = max(0, int(((center_w - half_w) / upsampled_w) // cell))
                right_box = min(num_grid - 1, int(((center_w + half_w) / upsampled_w) // cell))
                top, down = max(top_box, coord_h - 1), min(down_box, coord_h + 1)
                left, right = max(coord_w - 1, left_box), min(right_box, coord_w + 1)

                labels[top:down + 1, left:right + 1] = gt_labels[k]
                for i in range(top, down + 1):
                    for j in range(left, right + 1):
                        owner[i * num_grid + j] = k
            pos_index = sorted(owner)
            pos_mask = torch.zeros(num_grid ** 2, dtype=torch.bool, device=device)
            pos_mask[pos_index] = True
            if pos_index:
                mlvl_pos_mask_targets.append(box_masks[[owner[i] for i in pos_index]])
            else:
                mlvl_pos_mask_targets.append(torch.zeros((0, *size), dtype=torch.uint8, device=device))
            mlvl_labels.append(labels)
            mlvl_pos_masks.append(pos_mask)
            mlvl_pos_indexes.append(pos_index)
        return mlvl_pos_mask_targets, mlvl_labels, mlvl_pos_masks, mlvl_pos_indexes

    @staticmethod
    def _box_rows_cols(gt_instances: InstanceData, gt_bboxes: Tensor, height: int, width: int,
                       img_shape: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
        """Rows and columns of each instance's box mask on the padded input: the pipeline's
        (``GenerateBoxMask``, resized, flipped and padded with the image), or, without masks, drawn here
        from the boxes as GenerateBoxMask draws them."""
        masks = gt_instances.get("masks", None)
        if masks is None:
            return box_rows_cols(gt_bboxes, height, width, img_shape)
        masks = masks.to_tensor(torch.bool, gt_bboxes.device) if hasattr(masks, "to_tensor") else masks.bool()
        rows, cols = mask_rows_cols(masks, f"{_HEAD}: gt_instances.masks")
        # the data preprocessor pads masks to the batch input; the release's extend with zeros (O:SH:442)
        return F.pad(rows, (0, height - rows.shape[1])), F.pad(cols, (0, width - cols.shape[1]))

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

    def _mask_terms(self, mask_logits: Tensor, box_masks: Tensor, image_index: Tensor,
                    batch_inputs: Optional[Tensor]) -> Dict[str, Tensor]:
        """Per-instance mask terms (unweighted) of instances that share one loss size."""
        mask_scores = mask_logits.sigmoid()
        guide = None
        if self._needs_guide():
            guide = F.interpolate(batch_inputs.detach().float(), size=mask_logits.shape[-2:],
                                  mode="bilinear", align_corners=False)
        terms: Dict[str, Tensor] = {}
        if self.loss_proj_cfg is not None:
            terms["proj"] = projection_loss(mask_scores, box_masks)
        if self.loss_gp_cfg is not None:
            soft = gp_soft_targets(mask_scores, guide, image_index, tuple(self.loss_gp_cfg["zetas"]))
            terms["gp"] = masked_l1_loss(mask_scores, soft, box_masks)
        if self.loss_lp_cfg is not None:
            cfg = self.loss_lp_cfg
            soft = lp_soft_targets(mask_scores, guide, box_masks, image_index,
                                   cfg["kernel_size"], cfg["zeta"], cfg["iterations"])
            terms["lp"] = masked_l1_loss(mask_scores, soft, box_masks)
        if self.loss_boxinst_cfg is not None:
            cfg = self.loss_boxinst_cfg
            mean, std = getattr(self, "_pixel_mean_std", (None, None))
            if mean is None or std is None:  # plain RGB input: no normalisation to undo
                rgb = guide
            else:
                rgb = guide * std.view(1, -1, 1, 1).to(guide) + mean.view(1, -1, 1, 1).to(guide)
            sim = boxinst_color_similarity(rgb_to_lab(rgb), cfg["kernel_size"], cfg["dilation"], cfg["theta"])
            terms["boxinst"] = boxinst_pairwise_loss(mask_logits, box_masks, sim, image_index, cfg["kernel_size"],
                                                     cfg["dilation"], cfg["color_thresh"])
        if self.loss_tree_cfg is not None:
            soft = tree_filter_soft_targets(mask_scores, guide, image_index, tuple(self.loss_tree_cfg["zetas"]))
            terms["tree"] = masked_l1_loss(mask_scores, soft, box_masks)
        return terms

    def loss_by_feat(self, mlvl_kernel_preds: List[Tensor], mlvl_cls_preds: List[Tensor], mask_feats: Tensor,
                     batch_gt_instances, batch_img_metas: List[dict], batch_inputs: Optional[Tensor] = None,
                     **kwargs) -> Dict[str, Tensor]:
        feat_h, feat_w = mask_feats.shape[-2:]
        pos_mask_targets, labels, pos_indexes = [], [], []
        for gt_instances, meta in zip(batch_gt_instances, batch_img_metas):
            t, lab, _, pi = self._get_targets_single(gt_instances, featmap_sizes=(feat_h, feat_w),
                                                     img_shape=meta.get("img_shape"))
            pos_mask_targets.append(t)
            labels.append(lab)
            pos_indexes.append(pi)

        # mask predictions of the positive cells, grouped by loss size (one group per size, level-major)
        groups: Dict[Tuple[int, int], Dict[str, list]] = {}
        # one split, not a slice per (level, image): each slice's backward writes a zero tensor the size of the batch
        image_feats = mask_feats.split(1)
        for lvl, (lvl_kernel_preds, size) in enumerate(zip(mlvl_kernel_preds, self.loss_sizes(feat_h, feat_w))):
            for img_id in range(lvl_kernel_preds.shape[0]):
                index = pos_indexes[img_id][lvl]
                if not index:
                    continue
                kernels = lvl_kernel_preds[img_id].reshape(lvl_kernel_preds.shape[1], -1)[:, index]
                kernels = kernels.permute(1, 0).reshape(len(index), -1, self.dynamic_conv_size,
                                                        self.dynamic_conv_size)
                pred = F.conv2d(image_feats[img_id], kernels, stride=1)
                if tuple(pred.shape[-2:]) != size:  # the release resizes in training only (O:SH:213-214)
                    pred = F.interpolate(pred, size=size, mode="bilinear", align_corners=False)
                g = groups.setdefault(size, {"preds": [], "targets": [], "image_index": []})
                g["preds"].append(pred.view(-1, *size))
                g["targets"].append(pos_mask_targets[img_id][lvl])
                g["image_index"].append(torch.full((len(index),), img_id, dtype=torch.int64))
        num_pos = sum(len(i) for img in pos_indexes for i in img)

        names = [n for n in ("proj", "gp", "lp", "boxinst", "tree") if getattr(self, f"loss_{n}_cfg") is not None]
        per_instance: Dict[str, List[Tensor]] = {n: [] for n in names}
        for g in groups.values():
            mask_logits = torch.cat(g["preds"], 0).unsqueeze(1)
            box_masks = torch.cat(g["targets"], 0).unsqueeze(1).to(mask_logits.dtype)
            terms = self._mask_terms(mask_logits, box_masks, torch.cat(g["image_index"], 0), batch_inputs)
            for n in names:
                per_instance[n].append(terms[n])

        losses: Dict[str, Tensor] = {}
        factor = self._pairwise_factor()
        for n in names:
            if num_pos == 0:
                losses[f"loss_{n}"] = mask_feats.sum() * 0
                continue
            weight = getattr(self, f"loss_{n}_cfg")["loss_weight"]
            if n != "proj":  # the pairwise terms ramp up with the warm-up
                weight = factor * weight
            # mean over the positives of all levels (O:SH:346-348)
            losses[f"loss_{n}"] = weight * torch.cat(per_instance[n]).mean()

        flatten_labels = torch.cat([
            torch.cat([img_lvl_labels.flatten() for img_lvl_labels in lvl_labels])
            for lvl_labels in zip(*labels)])
        flatten_cls_preds = torch.cat([
            lvl_cls_preds.permute(0, 2, 3, 1).reshape(-1, self.num_classes) for lvl_cls_preds in mlvl_cls_preds])
        losses["loss_cls"] = self.loss_cls(flatten_cls_preds, flatten_labels, avg_factor=num_pos + 1)
        return losses
