# Other pairwise term: BoxInst's colour-similarity pairwise loss in place of GP and LP
# (apro.losses.baselines; weight 1 as BoxInst).
_base_ = ['../demo/box.py']
model = dict(mask_head=dict(loss_boxinst=dict(loss_weight=1.0, kernel_size=3, dilation=2, theta=2.0, color_thresh=0.3)))
