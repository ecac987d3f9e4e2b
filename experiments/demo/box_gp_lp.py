# box+gp+lp: the full APro box-supervised SOLOv2 (weights 3/2/1 as the original).
_base_ = ['./box.py']
model = dict(
    mask_head=dict(
        loss_gp=dict(_delete_=True, loss_weight=2.0, zetas=(0.01, 0.07)),
        loss_lp=dict(_delete_=True, loss_weight=1.0, kernel_size=5, zeta=0.15, iterations=20)))
