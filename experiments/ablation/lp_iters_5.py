# LP iterations: 5 (APro: 20); GP as in APro.
_base_ = ['../demo/box_gp_lp.py']
model = dict(mask_head=dict(loss_lp=dict(_delete_=True, loss_weight=1.0, kernel_size=5, zeta=0.15, iterations=5)))
