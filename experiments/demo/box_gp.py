# box+gp: projection loss + APro global propagation (GP) term.
_base_ = ['./box.py']
model = dict(mask_head=dict(loss_gp=dict(_delete_=True, loss_weight=2.0, zetas=(0.01, 0.07))))
