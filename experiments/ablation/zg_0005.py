# zeta_g sweep: GP pass-1 bandwidth 0.005 (APro: 0.01); pass 2 and LP as in APro.
_base_ = ['../demo/box_gp_lp.py']
model = dict(mask_head=dict(loss_gp=dict(_delete_=True, loss_weight=2.0, zetas=(0.005, 0.07))))
