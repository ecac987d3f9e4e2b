# paper_semantic, scribble labels: DeepLabV3+ R101 on VOC 2012 train_aug, partial cross-entropy + APro's
# GP and LP (experiments/registry.yaml: deeplabv3plus_r101_voc_scribble). Every training setting and the
# TEL file/line it follows (or why not) are listed in _base_paper_voc.py. Labels:
#   follows TEL     ScribbleSup's scribbles (TEL README "voc_scribbles.zip"; voc2012_loader.py
#                   annotation == 'scribble'), 3 px wide (voc2012_loader.py stroke_width = 3;
#                   experiments/semantic/voc_sources.yaml scribble_width: 3)
#   not kept        TEL rasterises with PIL lines with round joints (rasterize_scribbles);
#                   `apro convert-voc-labels` stamps a 3x3 square along each segment
_base_ = ['./_base_paper_voc.py']
labels = 'scribble'
train_dataloader = dict(dataset=dict(ann_file='ImageSets/Segmentation/train_aug_scribble.txt',
                                     data_prefix=dict(seg_map_path='labels/train/scribble')))
