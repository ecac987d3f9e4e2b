# scribble labels, partial cross-entropy only (the baseline).
_base_ = ['./_base_semantic.py']
labels = 'scribble'
train_dataloader = dict(dataset=dict(data_prefix=dict(seg_map_path='labels/train/scribble')))
