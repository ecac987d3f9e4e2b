# SOLOv2 R50 + APro, COCO 2017, 36 epochs (paper: 32.9 / 55.2 / 33.6).
_base_ = ['./_solov2_base.py']
