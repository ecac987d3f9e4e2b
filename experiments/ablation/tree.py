# Other pairwise term: the tree filter of the tree energy loss (product of edge affinities along
# the same MST) in place of GP (same weight and bandwidths); no LP.
_base_ = ['../demo/box.py']
model = dict(mask_head=dict(loss_tree=dict(loss_weight=2.0, zetas=(0.01, 0.07))))
