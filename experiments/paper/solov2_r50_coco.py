# SOLOv2 R50 + APro, COCO 2017, 36 epochs (paper: 32.9 / 55.2 / 33.6); the release's
# configs/apro_boxsolov2/box_solov2_coco_r50_fpn_3x.py.
_base_ = ['./_solov2_base.py']
