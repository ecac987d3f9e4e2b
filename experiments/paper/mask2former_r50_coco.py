# Mask2Former R50 + APro, COCO 2017, 50 epochs (paper: 36.1 / 62.0 / 36.7).
_base_ = ['./_mask2former_base.py']
