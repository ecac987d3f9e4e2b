# mask: fully supervised SOLOv2 (mmdet's own SOLOv2 / SOLOV2Head, dice loss on GT masks):
# the upper bound of the box-supervised variants.
_base_ = ['./_base_demo.py']
