# Mask2Former R50 + APro, Pascal VOC 2012 + SBD (10,582 / 1,449), 50 epochs (paper: 42.3 / 70.6 / 44.5);
# the release's configs/apro_box2mask/box2mask_r50_lsj_8x2_50e_voc.py: 33,065 iterations
# (50 x 10,582 / 16), LR x0.1 at 29,390 and 31,840, GP zetas 0.02 / 0.03.
_base_ = ['./_mask2former_base.py']
data_root = 'data/voc/'
classes = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
           'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
           'tvmonitor')
num_classes = len(classes)
max_iters = 33065
model = dict(
    panoptic_head=dict(num_things_classes=num_classes,
                       loss_cls=dict(class_weight=[1.0] * num_classes + [0.1]),
                       loss_gp=dict(zetas=(0.02, 0.03))),
    panoptic_fusion_head=dict(num_things_classes=num_classes))
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=classes)))
test_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=classes)))
test_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
train_cfg = dict(max_iters=max_iters)
param_scheduler = dict(end=max_iters, milestones=[29390, 31840])
default_hooks = dict(checkpoint=dict(interval=2000))
