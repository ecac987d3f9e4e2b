# Mask2Former Swin-L + APro, Pascal VOC (aug), 50 epochs (paper: 49.6 / 77.6 / 53.1); one GP pass, zeta 0.03.
# Schedule: the Swin recipe (batch 32) for 50 VOC epochs = 16,535 iters, LR steps at the same
# fractions as Box2Mask's VOC schedule (0.889, 0.963) -- the scaling is this suite's assumption.
_base_ = ['./mask2former_swinl_coco.py']
data_root = 'data/voc/'
classes = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
           'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
           'tvmonitor')
num_classes = len(classes)
max_iters = 16535
model = dict(
    panoptic_head=dict(num_things_classes=num_classes,
                       loss_cls=dict(class_weight=[1.0] * num_classes + [0.1]),
                       loss_gp=dict(zetas=(0.03,))),
    panoptic_fusion_head=dict(num_things_classes=num_classes))
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=classes)))
test_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=classes)))
test_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
train_cfg = dict(max_iters=max_iters)
param_scheduler = dict(end=max_iters, milestones=[14698, 15923])
default_hooks = dict(checkpoint=dict(interval=2000))
