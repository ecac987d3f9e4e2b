# box+lp: projection loss + APro local propagation (LP) term.
_base_ = ['./box.py']
model = dict(mask_head=dict(loss_lp=dict(_delete_=True, loss_weight=1.0, kernel_size=5, zeta=0.15, iterations=20)))
