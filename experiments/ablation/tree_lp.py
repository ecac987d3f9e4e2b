# Tree filter (TEL) + LP: GP of APro swapped for the product-affinity tree filter.
_base_ = ['../demo/box_lp.py']
model = dict(mask_head=dict(loss_tree=dict(loss_weight=2.0, zetas=(0.01, 0.07))))
