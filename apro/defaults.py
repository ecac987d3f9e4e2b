"""The settings of APro's two terms, written once (read-only), for the ops, the losses, the heads and
the figures alike. A setting with other values of its own (the semantic and Mask2Former GP) defines
them next to its code, from these keys. Nothing here imports anything of the suite.
"""
from types import MappingProxyType
from typing import Mapping

#: LP: ``kernel_size`` x ``kernel_size`` window, colour bandwidth ``zeta`` (zeta_s), ``iterations`` rounds
LP_DEFAULTS: Mapping = MappingProxyType(dict(loss_weight=1.0, kernel_size=5, zeta=0.15, iterations=20))
#: GP of the box-supervised SOLOv2 (the release): pass 1 image-guided with ``zetas[0]``, then self-guided
GP_DEFAULTS: Mapping = MappingProxyType(dict(loss_weight=2.0, zetas=(0.01, 0.07)))
