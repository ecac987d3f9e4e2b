# point labels, partial cross-entropy + APro's GP and LP soft pseudo-label losses.
_base_ = ['./point.py']
model = dict(apro_loss=dict(
    _delete_=True,
    loss_gp=dict(loss_weight=1.0, zetas=(0.05, 0.07)),
    loss_lp=dict(loss_weight=1.0, kernel_size=5, zeta=0.15, iterations=20),
    region='unlabelled',
    warmup_iters=100))
