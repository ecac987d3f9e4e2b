# paper_semantic, point labels: DeepLabV3+ R101 on VOC 2012 train_aug, partial cross-entropy + APro's
# GP and LP (experiments/registry.yaml: deeplabv3plus_r101_voc_point). Every training setting and the
# TEL file/line it follows (or why not) are listed in _base_paper_voc.py. Labels:
#   follows TEL     the "What's the point" clicks (TEL README "voc_whats_the_point.json";
#                   lib/datasets/loader/voc2012_loader.py annotation == 'point'), on the train_aug images
#   not kept        TEL adds background clicks taken from the scribbles (voc2012_loader.py:
#                   voc_whats_the_point_bg_from_scribbles.json) and draws each click as a 3-px disc
#                   (stroke_width = 3); the labels here are `apro convert-voc-labels`'s
#                   (experiments/semantic/voc_sources.yaml: the Stanford click JSON only, point_radius 0:
#                   single pixels), so they hold fewer labelled pixels and no background clicks
_base_ = ['./_base_paper_voc.py']
labels = 'point'
train_dataloader = dict(dataset=dict(ann_file='ImageSets/Segmentation/train_aug_point.txt',
                                     data_prefix=dict(seg_map_path='labels/train/point')))
