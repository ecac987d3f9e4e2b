"""Point- and scribble-supervised semantic segmentation with APro (mmseg 1.x).

* :mod:`apro.semantic.labels`: dense / point / scribble label PNGs from instance masks (numpy only);
* :mod:`apro.semantic.losses`: partial cross-entropy and the GP / LP soft pseudo-label losses (torch);
* :mod:`apro.semantic.models`: the mmseg plugin modules (imports mmseg);
* :mod:`apro.semantic.run`: ``apro train-semantic`` / ``apro evaluate-semantic`` (mIoU with mmseg's IoUMetric);
* :mod:`apro.semantic.voc`: the VOC 2012 point / scribble label converters of the paper setting.

Nothing is imported here, so ``import apro.semantic`` stays cheap.
"""
