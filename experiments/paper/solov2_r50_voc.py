# SOLOv2 R50 + APro, Pascal VOC 2012 + SBD (10,582 train / 1,449 val, COCO json written by
# apro.data.voc), 36 epochs (paper: 38.4 / 65.4 / 39.8); the release's
# configs/apro_boxsolov2/box_solov2_voc_r50_fpn_3x.py: 4 GPUs x 2 images, lr 5e-5, warm-up from
# 0.001, LP 5x5, mask_thr 0.7.
_base_ = ['./_solov2_base.py']
data_root = 'data/voc/'
classes = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
           'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
           'tvmonitor')
num_gpus = 4  # device_ids = range(4)
iters_per_epoch = 1323  # ceil(10,582 / (4 x 2))
max_iters = iters_per_epoch * 36
model = dict(mask_head=dict(num_classes=len(classes), loss_lp=dict(kernel_size=5)), test_cfg=dict(mask_thr=0.7))
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=classes)))
test_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=classes)))
test_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
optim_wrapper = dict(optimizer=dict(lr=5e-5))
train_cfg = dict(max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=2000),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[iters_per_epoch * 27, iters_per_epoch * 33], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=iters_per_epoch))
auto_scale_lr = dict(base_batch_size=num_gpus * 2)
