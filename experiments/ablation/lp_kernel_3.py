# LP kernel size: 3x3 (APro on VOC: 5, on COCO: 3); GP as in APro.
_base_ = ['../demo/box_gp_lp.py']
model = dict(mask_head=dict(loss_lp=dict(_delete_=True, loss_weight=1.0, kernel_size=3, zeta=0.15, iterations=20)))
