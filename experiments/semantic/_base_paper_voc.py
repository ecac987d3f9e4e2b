# Paper setting of the semantic suite (paper_semantic): DeepLabV3+ ResNet-101 on Pascal VOC 2012
# (the augmented set: 10,582 train_aug / 1,449 val images), trained from point or scribble labels
# with partial cross-entropy + APro's GP and LP terms, as TEL's recipe with TEL's tree energy loss
# replaced by GP + LP. The variants paper_voc_point.py / paper_voc_scribble.py set `labels`.
#
# Where each value comes from. "TEL" = github.com/megvii-research/TreeEnergyLoss at a4bf602: its
# scripts/voc2012/deeplab/train.sh and the config it loads, configs/voc2012/R_101_D_16.json
# (train.sh:16); the mmseg modules are those of mmseg 1.2.2's DeepLabV3+ R101 VOC-aug config.
#
#   iterations     80000                 TEL scripts/voc2012/deeplab/train.sh:27 MAX_ITERS=80000 (--max_iters, :42)
#   model          DeepLabV3+            TEL train.sh:18 MODEL_NAME="deeplabv3p" (lib/models/nets/deeplabv3plus.py)
#   backbone       ResNet-101, deep stem TEL train.sh:14 BACKBONE="deepbase_resnet101_dilated16" (deep_base: three
#                  (mmseg ResNetV1c)     3x3 stem convs, lib/models/backbones/resnet/resnet_models.py ResNet.resinit)
#   output stride  16                    TEL train.sh:14 "dilated16"; deeplabv3plus.py:18-24 (stride != 8 branch)
#                  (strides 1,2,2,1, dilations 1,1,1,2)
#   ASPP rates     6, 12, 18 (+ 1x1, +   TEL deeplabv3plus.py:23 d_rate = [6, 12, 18] (stride 16); image pooling:
#                  image pooling)        lib/models/modules/decoder_block.py ASPPModule.b4
#   head width     256                   TEL deeplabv3plus.py:26 ASPPModule(in_channels, 256, ...) and :28
#                                        DeepLabV3PlusHead(bottleneck_ch=256, skip_4x_ch=256); decoder_block.py
#                                        DeepLabV3PlusHead.last_conv1/last_conv2: 256 channels
#   skip (1/4)     layer1 (256 ch) -> 48 TEL decoder_block.py DeepLabV3PlusHead.reduce_skip_4x (Conv2d(skip_4x_ch, 48))
#   dropout        0.1 before the        TEL decoder_block.py DeepLabV3PlusHead.last_conv2 (nn.Dropout(0.1))
#                  classifier
#   auxiliary head none                  TEL deeplabv3plus.py: no auxiliary branch (mmseg's FCN aux head, weight 0.4,
#                                        is left out)
#   upsampling     align_corners=True    TEL deeplabv3plus.py:47 and decoder_block.py (F.interpolate(...,
#                                        align_corners=True))
#   classes        21, ignore 255        TEL lib/datasets/loader/voc2012_loader.py num_classes = 21,
#                                        semseg_ignore_class = 255 (lib/datasets/data_loader.py ReLabel(255, -1))
#   train / val    train_aug 10,582 /    TEL voc2012_loader.py __init__: SBD train + SBD val + VOC train - VOC val;
#                  VOC val 1,449         val = VOC val (laid out by workflow/rules/data.smk prepare_voc_semantic)
#   seg. loss      partial CE (labelled  TEL train.sh:19 LOSS_TYPE="fs_ce_loss" (loss_helper.py FSCELoss: CE with the
#                  pixels only)          unlabelled pixels ignored); here apro.models.segmentor PartialCrossEntropyLoss
#   pairwise loss  APro GP + LP on the   replaces TEL's TreeEnergyLoss (lib/loss/loss_helper.py): both are an L1
#                  unlabelled pixels     distance between the prediction and its affinity-filtered copy, averaged
#                                        over the unlabelled pixels (region='unlabelled' here). GP/LP keys as the
#                                        demo's point_gp_lp.py, except warmup_iters=0: TEL's loss applies its constant
#                                        weight from the first iteration (loss_helper.py TreeEnergyLoss.forward)
#   loss weight    GP 0.4, LP 0.4        TEL configs/voc2012/R_101_D_16.json:152 tree_loss weight 0.4 (the term GP + LP
#                                        replace; APro's own semantic weights are in no public source: each of the two
#                                        terms gets TEL's weight, an assumption)
#   loss grid      not kept              TEL filters the decoder's 1/4-resolution prediction (loss_helper.py
#                                        TreeEnergyLoss.forward resizes the image to preds' size, deeplabv3plus.py
#                                        outs[1] = main_pred); AProEncoderDecoder (apro/models/segmentor.py) computes
#                                        GP / LP on the prediction upsampled to the crop (512 x 512), 16x the pixels
#   GPUs / batch   16 on one process     TEL R_101_D_16.json:14 batch_size 16 in all, on 4 GPUs (train.sh:39 --gpu
#                                        0 1 2 3); one process here because `apro train` runs one
#   crop           512 x 512             TEL R_101_D_16.json:17, :64 (input_size, random_crop crop_size)
#   optimiser      SGD lr 0.001,         TEL R_101_D_16.json:114 base_lr 0.001, :128-137 sgd (momentum 0.9, weight
#                  momentum 0.9, weight  decay 1e-4, no nesterov)
#                  decay 1e-4
#   head LR x10    decode_head lr_mult   TEL train.sh:45 --nbb_mult 10.0 (main.py:129: the not-backbone parts' LR
#                  10                    multiplier)
#   LR policy      poly, power 0.9, to 0 TEL R_101_D_16.json:116 lambda_poly; segmentor/tools/optim_scheduler.py:66-68
#                                        (1 - iter / max_iters) ** 0.9 by default
#   augmentation   flip 0.5, random      TEL R_101_D_16.json:47 trans_seq [random_hflip, random_resize, random_crop]
#                  resize x [0.5, 2.0],  (:52-67: flip 0.5, scale 0.5-2.0 with aspect 0.9-1.1, crop 512); no
#                  crop 512              photometric step (random_brightness is not in trans_seq). Not kept: TEL scales
#                                        the image itself (0.5-2.0 of a ~500 x 375 photo) and jitters the aspect;
#                                        mmseg's RandomResize scales a 2048 x 512 base (a VOC photo to 683 x 512) by
#                                        0.5-2.0 with the aspect kept
#   normalisation  ImageNet mean/std     TEL R_101_D_16.json:78-83 (mean 0.485/0.456/0.406, std 0.229/0.224/0.225 of
#                                        /255), as mmseg's data preprocessor
#   ImageNet init  weights/resnet101_v1c-e67eebb6.pth (apro/weights.py; open-mmlab://resnet101_v1c, the one mmseg's
#                                        DeepLabV3+ R101 configs use). Not TEL's: TEL train.sh:25
#                                        ./pretrained/resnet101-imagenet.pth is a Google Drive file (README), whose
#                                        deep stem is 64-64-128 wide (resnet_models.py deep_base); mmseg's v1c is
#                                        32-32-64, kept here to match its checkpoint
#   BN             BN, trained           TEL R_101_D_16.json:97 torchsyncbn; one process here: BN
#   test           whole image, single   TEL R_101_D_16.json:24-25 ms_test at scales 0.5-2.0: not kept (`apro
#                  scale, batch 1, mIoU  evaluate` runs the test loop at one scale)
#   tree sigma     not applicable        TEL train.sh:28 SIGMA=0.02 is the tree filter's; GP/LP have their own zetas
#
# `apro train` sets data_root and the label folders (<label-root>/train/<labels>,
# <label-root>/val/full): the workflow passes --data-root data/voc_aug --label-root data/voc_aug/labels.
_base_ = ['mmseg::_base_/default_runtime.py']

custom_imports = dict(imports=['apro.models.segmentor'], allow_failed_imports=False)

data_root = 'data/voc_aug/'
labels = 'point'  # training labels: point or scribble (evaluation always uses the dense val masks)
max_iters = 80000
batch_size = 16
crop_size = (512, 512)
num_classes = 21
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    type='AProEncoderDecoder',
    apro_loss=dict(
        loss_gp=dict(loss_weight=0.4, zetas=(0.05, 0.07)),
        loss_lp=dict(loss_weight=0.4, kernel_size=5, zeta=0.15, iterations=20),
        region='unlabelled',
        warmup_iters=0),
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size=crop_size),
    backbone=dict(
        type='ResNetV1c',
        depth=101,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        # output stride 16
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        contract_dilation=True,
        init_cfg=dict(type='Pretrained', checkpoint='weights/resnet101_v1c-e67eebb6.pth')),
    decode_head=dict(
        type='DepthwiseSeparableASPPHead',
        in_channels=2048,
        in_index=3,
        channels=256,
        dilations=(1, 6, 12, 18),
        c1_in_channels=256,
        c1_channels=48,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=True,
        ignore_index=255,
        loss_decode=dict(type='PartialCrossEntropyLoss', loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

dataset_type = 'PascalVOCDataset'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        # the train_aug images that have a label of this kind (prepare_voc_semantic writes the list)
        ann_file='ImageSets/Segmentation/train_aug_' + labels + '.txt',
        # seg_map_path: set by apro train to <label-root>/train/<labels>
        data_prefix=dict(img_path='train', seg_map_path='labels/train/' + labels),
        pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/val.txt',
        data_prefix=dict(img_path='val', seg_map_path='labels/val/full'),
        pipeline=test_pipeline))
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
val_dataloader = None
val_cfg = None
val_evaluator = None
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.001, momentum=0.9, weight_decay=0.0001),
                     paramwise_cfg=dict(custom_keys={'decode_head': dict(lr_mult=10.0)}), clip_grad=None)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4000, max_keep_ckpts=2),  # resumable
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook', draw=False))
log_processor = dict(by_epoch=False)
