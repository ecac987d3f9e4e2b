"""The semantic paper setting (paper_semantic): its configs, the VOC layout and the workflow plan.

* the two configs (experiments/semantic/paper_voc_{point,scribble}.py) hold the recipe their header
  states, build, train one step and predict at reduced size on CPU (widths and crop shrunk here, never
  in the configs), and run end to end through ``apro train-semantic`` / ``evaluate-semantic`` on a tiny
  stand-in of the layout;
* :func:`apro.data.voc.layout_semantic` on stand-ins of the VOC 2012 tar and SBD tgz: the folders,
  the splits, the label values, and bad input failing with the file named;
* ``snakemake -n --config suite=paper_semantic`` plans the data, label, weights, train and evaluate jobs.
"""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from apro import registry as reg
from apro import weights as apro_weights
from apro.data import voc

pytest.importorskip("mmseg")

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"point": "experiments/semantic/paper_voc_point.py",
           "scribble": "experiments/semantic/paper_voc_scribble.py"}
ENTRIES = {"point": "deeplabv3plus_r101_voc_point", "scribble": "deeplabv3plus_r101_voc_scribble"}
SIZE = 64


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the tiny models run in milliseconds, where thread contention costs seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _load(kind):
    from mmengine.config import Config

    return Config.fromfile(str(ROOT / CONFIGS[kind]))


def _shrink(cfg):
    """Narrow widths, a 64-px crop and 2 LP iterations for a CPU step (test-only overrides)."""
    m = cfg.model
    m.backbone.update(init_cfg=None, base_channels=4, stem_channels=8)  # stages: 16, 32, 64, 128 channels
    m.decode_head.update(in_channels=128, c1_in_channels=16, channels=16, c1_channels=8)
    m.data_preprocessor.size = (SIZE, SIZE)
    m.apro_loss.loss_lp.iterations = 2
    for step in cfg.train_dataloader.dataset.pipeline:
        if step.type == "RandomResize":
            step.scale = (4 * SIZE, SIZE)
        elif step.type == "RandomCrop":
            step.crop_size = (SIZE, SIZE)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.update(num_workers=0, persistent_workers=False)
    cfg.train_dataloader.batch_size = 2
    return cfg


# ---------------------------------------------------------------- the configs

def test_configs_hold_the_stated_recipe():
    registry = reg.load_registry()
    for kind, path in CONFIGS.items():
        cfg = _load(kind)
        e = registry.experiment(ENTRIES[kind])
        assert e.config == path and e.dataset == "voc_aug" and e.supervision == kind
        assert cfg.labels == kind and cfg.train_cfg.max_iters == e.iters == 80000  # TEL train.sh MAX_ITERS
        ds = cfg.train_dataloader.dataset
        assert ds.type == cfg.test_dataloader.dataset.type == "PascalVOCDataset"
        assert ds.ann_file == f"ImageSets/Segmentation/train_aug_{kind}.txt"
        assert ds.data_prefix == {"img_path": "train", "seg_map_path": f"labels/train/{kind}"}
        assert cfg.test_dataloader.dataset.ann_file == "ImageSets/Segmentation/val.txt"
        assert cfg.test_dataloader.batch_size == 1 and cfg.model.test_cfg.mode == "whole"
        m = cfg.model
        bb, head = m.backbone, m.decode_head
        assert m.type == "AProEncoderDecoder" and "auxiliary_head" not in m
        assert (bb.type, bb.depth, tuple(bb.strides), tuple(bb.dilations)) == ("ResNetV1c", 101, (1, 2, 2, 1),
                                                                               (1, 1, 1, 2))  # output stride 16
        assert head.type == "DepthwiseSeparableASPPHead" and tuple(head.dilations) == (1, 6, 12, 18)
        assert (head.channels, head.c1_channels, head.num_classes, head.ignore_index) == (256, 48, 21, 255)
        assert head.loss_decode.type == "PartialCrossEntropyLoss" and head.align_corners is True
        assert set(m.apro_loss) == {"loss_gp", "loss_lp", "region", "warmup_iters"}
        assert m.apro_loss.region == "unlabelled"
        assert cfg.train_dataloader.batch_size == 16 and tuple(m.data_preprocessor.size) == (512, 512)
        opt = cfg.optim_wrapper.optimizer
        # TEL configs/voc2012/R_101_D_16.json:114, :135-136; train.sh:45 --nbb_mult 10
        assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ("SGD", 0.001, 0.9, 0.0001)
        assert cfg.optim_wrapper.paramwise_cfg.custom_keys == {"decode_head": {"lr_mult": 10.0}}
        (poly,) = cfg.param_scheduler  # lambda_poly: (1 - iter / max_iters) ** 0.9 (optim_scheduler.py:66-68)
        assert (poly.type, poly.power, poly.eta_min, poly.end) == ("PolyLR", 0.9, 0.0, cfg.train_cfg.max_iters)
        assert m.apro_loss.loss_gp.loss_weight == m.apro_loss.loss_lp.loss_weight == 0.4  # TEL's tree-loss weight
        assert [s.type for s in ds.pipeline if s.type in ("RandomFlip", "RandomResize", "PhotoMetricDistortion")] \
            == ["RandomResize", "RandomFlip"]  # TEL's trans_seq has no photometric step
        crop = [s for s in ds.pipeline if s.type == "RandomCrop"]
        assert len(crop) == 1 and tuple(crop[0].crop_size) == (512, 512)
        # the ImageNet checkpoint is a weights/ file the workflow can fetch
        wanted = apro_weights.weights_in_config(ROOT / path)
        assert wanted == [bb.init_cfg.checkpoint] and Path(wanted[0]).name in apro_weights.WEIGHTS
        assert "://" not in bb.init_cfg.checkpoint


def _batch(seed=0):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for h, w in ((SIZE, SIZE), (SIZE - 8, SIZE)):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8))
        label = torch.full((1, h, w), 255, dtype=torch.long)
        label[0, 5:9, 5:20] = 3   # a short scribble of class 3
        label[0, h - 10, w - 10] = 0  # one background click
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=label)
        samples.append(s)
    return {"inputs": inputs, "data_samples": samples}


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_config_trains_one_step_and_predicts(kind):
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    import apro.models.segmentor  # noqa: F401  (what custom_imports loads)

    cfg = _shrink(_load(kind))
    assert cfg.custom_imports["imports"] == ["apro.models.segmentor"]
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)  # the config's SGD
    before = model.decode_head.conv_seg.weight.detach().clone()
    losses = model.train_step(_batch(), optim)
    assert {"decode.loss_pce", "decode.loss_gp", "decode.loss_lp"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    assert float(losses["decode.loss_gp"].detach()) > 0 and float(losses["decode.loss_lp"].detach()) > 0
    assert not torch.equal(before, model.decode_head.conv_seg.weight)  # the step changed the weights
    model.eval()
    batch = _batch(1)
    for i, (h, w) in enumerate(((SIZE, SIZE), (SIZE - 8, SIZE))):  # batches of one, as the config tests
        with torch.no_grad():
            (r,) = model.test_step({"inputs": batch["inputs"][i:i + 1], "data_samples": batch["data_samples"][i:i + 1]})
        pred = r.pred_sem_seg.data
        assert tuple(pred.shape) == (1, h, w) and int(pred.min()) >= 0 and int(pred.max()) < 21


# ---------------------------------------------------------------- stand-ins of the archives

def _jpeg(h, w, seed):
    buf = io.BytesIO()
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(buf, format="JPEG")
    return buf.getvalue()


def _palette_png(lab, mode="P"):
    buf = io.BytesIO()
    im = Image.fromarray(lab.astype(np.uint8), mode="L")
    if mode == "P":
        im = im.convert("P")
        im.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)])
    else:
        im = im.convert(mode)
    im.save(buf, format="PNG")
    return buf.getvalue()


def _mat(lab):
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, {"GTcls": {"Segmentation": lab.astype(np.uint8), "Boundaries": np.zeros((1, 20), object),
                            "CategoriesPresent": np.unique(lab[lab > 0]).astype(np.uint8)}})
    return buf.getvalue()


def _add(tf, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


# ids: 2007_000032 VOC train (VOC mask), 2007_000033 VOC val (VOC mask; SBD has it too, in its train
# list), 2008_000002 SBD train, 2008_000003 SBD val, 2008_000099 an image in no list
SIZES = {"2007_000032": (30, 40), "2007_000033": (24, 36), "2008_000002": (32, 28), "2008_000003": (20, 30),
         "2008_000099": (16, 16)}


def _voc_tar(path, masks=None, lists=True, drop_jpeg=None, png_mode="P"):
    if masks is None:
        a = np.zeros(SIZES["2007_000032"], np.uint8)
        a[5:20, 10:30] = 1
        a[4, :] = 255  # VOC's void border
        masks = {"2007_000032": a, "2007_000033": np.full(SIZES["2007_000033"], 15, np.uint8)}
    with tarfile.open(path, "w") as tf:
        for k, (stem, (h, w)) in enumerate(sorted(SIZES.items())):
            if stem != drop_jpeg:
                _add(tf, f"VOCdevkit/VOC2012/JPEGImages/{stem}.jpg", _jpeg(h, w, k))
        for stem, lab in masks.items():
            _add(tf, f"VOCdevkit/VOC2012/SegmentationClass/{stem}.png", _palette_png(lab, png_mode))
        if lists:
            _add(tf, "VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt", b"2007_000032\n")
            _add(tf, "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt", b"2007_000033\n")
        _add(tf, "VOCdevkit/VOC2012/Annotations/2007_000032.xml", b"<annotation/>")  # ignored
    return path


def _sbd_tgz(path, bad_mat=False):
    masks = {"2007_000033": np.full(SIZES["2007_000033"], 5, np.uint8),
             "2008_000002": np.full(SIZES["2008_000002"], 7, np.uint8),
             "2008_000003": np.full(SIZES["2008_000003"], 9, np.uint8)}
    masks["2008_000002"][:8] = 0
    with tarfile.open(path, "w:gz") as tf:
        for stem, lab in masks.items():
            data = b"not a mat file" if bad_mat and stem == "2008_000002" else _mat(lab)
            _add(tf, f"benchmark_RELEASE/dataset/cls/{stem}.mat", data)
        _add(tf, "benchmark_RELEASE/dataset/train.txt", b"2007_000033\n2008_000002\n")
        _add(tf, "benchmark_RELEASE/dataset/val.txt", b"2008_000003\n")
        _add(tf, "benchmark_RELEASE/dataset/img/2008_000002.jpg", _jpeg(8, 8, 9))  # ignored
    return path


def _sparse(root, bad_size=False):
    for kind, stems in (("point", ("2007_000032", "2008_000002", "2007_000033")),
                        ("scribble", ("2007_000032", "2008_000002", "2008_000003", "2009_999999"))):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for stem in stems:
            h, w = SIZES.get(stem, (10, 10))
            if bad_size and kind == "scribble" and stem == "2008_000003":
                h += 1
            lab = np.full((h, w), 255, np.uint8)
            lab[h // 2, w // 2] = 3 if kind == "point" else 0
            lab[2, 1:5] = 1 if kind == "scribble" else 255
            Image.fromarray(lab).save(root / kind / f"{stem}.png")
    return root


@pytest.fixture
def standins(tmp_path):
    return (_voc_tar(tmp_path / "VOCtrainval.tar"), _sbd_tgz(tmp_path / "benchmark.tgz"), _sparse(tmp_path / "sparse"))


def _ids(path):
    return path.read_text().split()


def _png(path):
    return np.array(Image.open(path))


def test_layout_writes_the_semantic_folders(standins, tmp_path):
    voc_tar, sbd_tgz, sparse = standins
    out = tmp_path / "data" / "voc_aug"
    counts = voc.layout_semantic(voc_tar, sbd_tgz, out, sparse, expect={"train_aug": 3, "val": 1})
    assert counts["train_aug"] == 3 and counts["val"] == 1
    assert (counts["point"], counts["point_missing"], counts["scribble"], counts["scribble_missing"]) == (2, 1, 3, 0)
    sets = out / "ImageSets" / "Segmentation"
    assert _ids(sets / "train_aug.txt") == ["2007_000032", "2008_000002", "2008_000003"]
    assert _ids(sets / "val.txt") == ["2007_000033"]
    assert _ids(sets / "train_aug_point.txt") == ["2007_000032", "2008_000002"]  # not the val image
    assert _ids(sets / "train_aug_scribble.txt") == ["2007_000032", "2008_000002", "2008_000003"]
    assert sorted(p.stem for p in (out / "JPEGImages").glob("*.jpg")) == sorted(SIZES)
    assert sorted(p.stem for p in (out / "SegmentationClassAug").glob("*.png")) == \
        ["2007_000032", "2007_000033", "2008_000002", "2008_000003"]
    # VOC's own masks (palette indices, void 255 kept) win over SBD's
    a = _png(out / "SegmentationClassAug" / "2007_000032.png")
    assert a.shape == SIZES["2007_000032"] and set(np.unique(a)) == {0, 1, 255} and (a[4] == 255).all()
    assert (_png(out / "labels" / "val" / "full" / "2007_000033.png") == 15).all()  # VOC val, not SBD's 5
    b = _png(out / "labels" / "train" / "full" / "2008_000002.png")  # from SBD's GTcls.Segmentation
    assert b.shape == SIZES["2008_000002"] and (b[:8] == 0).all() and (b[8:] == 7).all()
    assert (_png(out / "SegmentationClassAug" / "2008_000003.png") == 9).all()
    p = _png(out / "labels" / "train" / "point" / "2008_000002.png")
    assert p.shape == SIZES["2008_000002"] and p[16, 14] == 3 and (p != 255).sum() == 1
    assert not (out / "labels" / "train" / "point" / "2007_000033.png").exists()
    assert not (out / "labels" / "train" / "scribble" / "2009_999999.png").exists()
    # what apro train-semantic reads: <data-root>/{train,val}/<id>.jpg, <label-root>/{train,val}/full
    assert Image.open(out / "train" / "2008_000003.jpg").size == (30, 20)
    assert (out / "val" / "2007_000033.jpg").is_file()
    meta = json.loads((out / "layout.json").read_text())
    assert meta["train_aug"] == 3 and meta["ignore_index"] == 255 and len(meta["classes"]) == 21
    assert not list(out.parent.glob(".voc_aug.*"))  # the temporary folder was renamed
    # a second run replaces the folder (as a rerun of the rule does)
    (out / "stale").write_text("x")
    voc.layout_semantic(voc_tar, sbd_tgz, out, sparse)
    assert not (out / "stale").exists()


def _fails(match, *args, **kwargs):
    out = args[2]
    with pytest.raises(voc.VOCError, match=match):
        voc.layout_semantic(*args, **kwargs)
    assert not Path(out).exists() and not list(Path(out).parent.glob(f".{Path(out).name}.*"))


def test_layout_bad_input_names_the_file(standins, tmp_path):
    voc_tar, sbd_tgz, sparse = standins
    out = tmp_path / "out" / "voc_aug"
    _fails(re.escape(f"{tmp_path / 'nope.tar'}: not found"), tmp_path / "nope.tar", sbd_tgz, out, sparse)
    # the archives swapped: each is named with what it should have held
    _fails(re.escape(str(voc_tar)) + r": no dataset/train\.txt, dataset/val\.txt, dataset/cls/\*\.mat.*SBD",
           sbd_tgz, voc_tar, out, sparse)
    not_tar = tmp_path / "notes.txt"
    not_tar.write_text("hello")
    _fails(re.escape(f"{not_tar}: not a (compressed) tar archive"), voc_tar, not_tar, out, sparse)
    _fails(re.escape(f"{tmp_path / 'bad.tgz'}:benchmark_RELEASE/dataset/cls/2008_000002.mat: expected an SBD cls .mat"),
           voc_tar, _sbd_tgz(tmp_path / "bad.tgz", bad_mat=True), out, sparse)
    _fails(re.escape(f"{tmp_path / 'rgb.tar'}:VOCdevkit/VOC2012/SegmentationClass/") + r".*mode P",
           _voc_tar(tmp_path / "rgb.tar", png_mode="RGB"), sbd_tgz, out, sparse)
    _fails(re.escape(f"{tmp_path / 'nolists.tar'}: no VOC2012/ImageSets/Segmentation/train.txt"),
           _voc_tar(tmp_path / "nolists.tar", lists=False), sbd_tgz, out, sparse)
    _fails(r"1 image\(s\) of the train_aug / val lists have no VOC2012/JPEGImages/<id>\.jpg: 2008_000003",
           _voc_tar(tmp_path / "nojpeg.tar", drop_jpeg="2008_000003"), sbd_tgz, out, sparse)
    _fails("3 train_aug images, expected 10582", voc_tar, sbd_tgz, out, sparse, expect=voc.LAYOUT_EXPECTED)
    _fails(re.escape(f"{tmp_path / 'sparse2' / 'scribble' / '2008_000003.png'}: 30x21, but the image"),
           voc_tar, sbd_tgz, out, _sparse(tmp_path / "sparse2", bad_size=True))
    _fails(re.escape(f"{tmp_path / 'empty' / 'point'}: not found"), voc_tar, sbd_tgz, out, tmp_path / "empty")
    # the CLI: exit status 2, the error on stderr
    proc = subprocess.run([sys.executable, "-m", "apro", "prepare-voc-semantic", "--voc-tar", str(tmp_path / "x.tar"),
                           "--sbd-tgz", str(sbd_tgz), "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and f"{tmp_path / 'x.tar'}: not found" in proc.stderr


def test_scribble_tags_of_tels_zip_map_to_voc_classes():
    """TEL's loader names the scribble tags plane, bike, table, plant, monitor (voc2012_loader.py)."""
    got = [voc.class_index(t, "x.xml") for t in ("plane", "bike", "table", "plant", "monitor", "bkg", "person")]
    assert got == [1, 2, 11, 16, 20, 0, 15]
    with pytest.raises(voc.VOCError, match="x.xml: unknown class 'planet'"):
        voc.class_index("planet", "x.xml")


def test_paper_config_runs_through_train_and_evaluate_semantic(standins, tmp_path):
    """`apro train` (1 step) and `apro evaluate` of the shrunk point config on the stand-in layout."""
    from apro.evaluate import evaluate
    from apro.train import train

    voc_tar, sbd_tgz, sparse = standins
    data = tmp_path / "voc_aug"
    voc.layout_semantic(voc_tar, sbd_tgz, data, sparse)
    cfg = _shrink(_load("point"))
    cfg.default_hooks.logger.interval = 1
    small = tmp_path / "paper_voc_point_small.py"
    cfg.dump(str(small))
    done = train(str(small), str(tmp_path / "work"), str(data), max_iters=1, label_root=str(data / "labels"))
    assert done["max_iters"] == 1 and done["labels"] == "point" and Path(done["checkpoint"]).is_file()
    metrics = evaluate(str(small), str(tmp_path / "work"), str(data), str(tmp_path / "metrics.json"),
                       label_root=str(data / "labels"))
    assert 0.0 <= metrics["mIoU"] <= 100.0 and json.loads((tmp_path / "metrics.json").read_text())["mIoU"] == \
        metrics["mIoU"]


# ---------------------------------------------------------------- the workflow

@pytest.mark.workflow
def test_paper_semantic_dry_run_plans_every_job(tmp_path):
    cmd = [sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "2", "--directory", str(tmp_path),
           "--config", "suite=paper_semantic"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    counts = {ln.split()[0]: int(ln.split()[1]) for ln in text.splitlines()
              if len(ln.split()) == 2 and ln.split()[1].isdigit()}
    assert counts["fetch_archive"] == 2 and counts["voc_fetch"] == 2 and counts["voc_sparse_labels"] == 1
    assert counts["prepare_voc_semantic"] == 1 and counts["fetch_weights"] == 1
    assert counts["train"] == 2 and counts["evaluate"] == 2
    # no COCO instance files in the semantic VOC layout: no figures and no validate_data (report.smk, data.smk)
    assert "visualize" not in counts and "validate_data" not in counts
    assert "apro prepare-voc-semantic --voc-tar downloads/VOCtrainval_11-May-2012.tar --sbd-tgz downloads/" \
           "benchmark.tgz --sparse data/semantic/voc_aug/train --out data/voc_aug" in text
    for name in ENTRIES.values():  # one GPU, one process (registry: gpus 1)
        assert re.search(rf"apro train {name} --suite paper_semantic --seed 0 --threads \d+ ", text), name
        assert f"results/paper_semantic/{name}/seed0/metrics.json" in text
    assert "apro fetch resnet101_v1c-e67eebb6.pth --out weights/resnet101_v1c-e67eebb6.pth" in text
