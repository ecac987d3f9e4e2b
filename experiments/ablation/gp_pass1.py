# GP pass 1 only (image-guided), no self-guided second pass; LP as in APro.
_base_ = ['../demo/box_gp_lp.py']
model = dict(mask_head=dict(loss_gp=dict(_delete_=True, loss_weight=2.0, zetas=(0.01,))))
