"""The framework plugin modules of the APro suite, one module per model family.

A config loads the module of its model, which registers it:

* ``apro.models.box_solov2`` (mmdet ``MODELS``): ``BoxSOLOv2`` and ``BoxSOLOV2Head``, box-supervised
  SOLOv2 with APro's GP / LP terms, and ``AProMaskFeatModule``, the release's mask-feature branch;
  the fully supervised baseline uses mmdet's own ``SOLOv2`` / ``SOLOV2Head``;
* ``apro.models.mask2former_apro`` (mmdet): ``BoxMask2Former``, ``BoxMask2FormerHead`` and the
  matching cost ``BoxMatchingCost`` (``TASK_UTILS``);
* ``apro.models.segmentor`` (mmseg): ``AProEncoderDecoder``, ``PartialCrossEntropyLoss`` and
  ``SyntheticSegDataset``, point- / scribble-supervised semantic segmentation.

For example ``custom_imports = dict(imports=['apro.models.box_solov2'], allow_failed_imports=False)``.
Nothing is imported here, so an mmseg config never imports mmdet (and the other way round).
"""
