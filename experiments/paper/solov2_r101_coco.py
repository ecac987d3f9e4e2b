# SOLOv2 R101 + APro, COCO 2017, 36 epochs (paper: 34.3 / 57.0 / 35.3); the release's
# configs/apro_boxsolov2/box_solov2_coco_r101_fpn_3x.py: R50 COCO with ResNet-101 and mask_thr 0.55.
_base_ = ['./_solov2_base.py']
model = dict(backbone=dict(depth=101, init_cfg=dict(checkpoint='weights/resnet101-b641f3a9.pth')),
             test_cfg=dict(mask_thr=0.55))
