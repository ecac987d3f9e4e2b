# SOLOv2 R50 + APro, Pascal VOC 2012 + SBD (10,582 train / 1,449 val, COCO json written by
# apro.data.voc), 36 epochs (paper: 38.4 / 65.4 / 39.8).
_base_ = ['./_solov2_base.py']
data_root = 'data/voc/'
classes = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
           'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
           'tvmonitor')
iters_per_epoch = 662  # ceil(10,582 / 16)
max_iters = iters_per_epoch * 36
model = dict(mask_head=dict(num_classes=len(classes), loss_lp=dict(kernel_size=5)))
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=classes)))
test_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=classes)))
test_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
train_cfg = dict(max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[iters_per_epoch * 27, iters_per_epoch * 33], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=iters_per_epoch))
