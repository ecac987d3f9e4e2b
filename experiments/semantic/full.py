# Dense labels, cross-entropy on every pixel: the fully supervised upper bound.
_base_ = ['./_base_semantic.py']
labels = 'full'
