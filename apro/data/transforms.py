"""Two data-pipeline transforms of the APro release, for mmdet 3.x (registered in mmdet's TRANSFORMS).

* :class:`GenerateBoxMask` -- the release's box masks (``mmdet/datasets/pipelines/loading.py:647-663`` of
  CircleRadon/APro at 8251a9e): right after loading, every GT box becomes a mask on the image (the box
  rounded, rows ``y0..y1`` and columns ``x0..x1`` inclusive, cut at the image's border; a box starting left
  of or above the image starts at 0, where the release's slice would wrap round to the far side: no box of
  VOC or COCO does, boxes of other data may, apro.data.checks counts them). The masks then
  go through the pipeline with the image: resized (nearest), flipped, cropped (``RandomCrop`` can
  recompute the boxes from them, as the release's Mask2Former pipeline does) and padded. The box heads
  read them from ``gt_instances.masks``.
* :class:`KeepShapePad` -- mmdet's ``Pad`` that leaves ``img_shape`` at the image's own size, as mmdet
  2.x's ``Pad`` did (mmcv 2.x's sets it to the padded size, and the predictions would then be rescaled
  to the original image with the padding included). The release pads Mask2Former's images with 128
  before normalising, which the data preprocessor cannot do (it pads after normalising, one value for
  every channel).
"""
from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import Pad
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import BitmapMasks

__all__ = ["GenerateBoxMask", "KeepShapePad"]


@TRANSFORMS.register_module()
class GenerateBoxMask(BaseTransform):
    """``gt_masks`` from ``gt_bboxes``: one filled rectangle per box on the image (the release's rounding)."""

    def transform(self, results: dict) -> dict:
        h, w = results["img"].shape[:2]
        boxes = results["gt_bboxes"]
        boxes = boxes.numpy() if hasattr(boxes, "numpy") else np.asarray(boxes)
        rounded = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).round().astype(np.int64)
        rounded[:, :2] = rounded[:, :2].clip(min=0)  # a negative start would wrap round (numpy slice)
        masks = np.zeros((len(rounded), h, w), dtype=np.uint8)
        for mask, (x0, y0, x1, y1) in zip(masks, rounded):
            mask[y0:y1 + 1, x0:x1 + 1] = 1  # the release's numpy slice
        results["gt_masks"] = BitmapMasks(masks, h, w)
        return results


@TRANSFORMS.register_module()
class KeepShapePad(Pad):
    """mmdet's ``Pad`` (image, masks, segmentation) that keeps ``img_shape`` at the unpadded image's size."""

    def transform(self, results: dict) -> dict:
        img_shape = results["img"].shape[:2]
        results = super().transform(results)
        results["img_shape"] = img_shape
        return results
