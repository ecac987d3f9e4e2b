"""The paper configs hold the APro release's recipes: every value of experiments/paper/original_recipes.yaml.

The table was written from the release (github.com/CircleRadon/APro at 8251a9e), each value with the
file and line it comes from; here every paper config is merged by mmengine and each recorded value is
compared with the merged one, so any drift fails and says where. The table is the release's word,
never read back from this suite's configs.
"""
import re
from pathlib import Path

import pytest
import yaml

pytest.importorskip("mmdet")

ROOT = Path(__file__).resolve().parents[2]
RECIPES = yaml.safe_load((ROOT / "experiments" / "paper" / "original_recipes.yaml").read_text())
ENTRIES = RECIPES["entries"]


def _registry():
    from apro.registry import load_registry

    return load_registry()


def _lookup(cfg, key: str):
    """The value at a dotted key of a merged config (a number is a list index); KeyError if absent."""
    cur = cfg
    for part in key.split("."):
        if isinstance(cur, (list, tuple)):
            if not part.isdigit() or int(part) >= len(cur):
                raise KeyError(key)
            cur = cur[int(part)]
        elif part in cur:
            cur = cur[part]
        else:
            raise KeyError(key)
    return cur


def _plain(value):
    """ConfigDicts as dicts, tuples as lists, so a config compares with YAML."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _same(got, want) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        return got == pytest.approx(want, rel=1e-12, abs=0)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    return got == want


def drift(name: str, cfg) -> list:
    """One line per recorded value of entry ``name`` that ``cfg`` does not hold."""
    lines = []
    for item in ENTRIES[name]["values"]:
        try:
            got = _plain(_lookup(cfg, item["key"]))
        except KeyError:
            got = "<missing>"
        if not _same(got, item["value"]):
            lines.append(f"{name}: {item['key']}: this suite has {got!r}, the release {item['value']!r} "
                         f"({item['source']})")
    return lines


def _config(name):
    from mmengine.config import Config

    return Config.fromfile(str(_registry().experiments[name].config_path()))


def test_every_paper_entry_has_the_release_recipe():
    """Each paper entry with a config is in the table, and every value names its file and line."""
    paper = {e.name for e in _registry().experiments_in("paper") if e.config is not None}
    assert set(ENTRIES) == paper
    assert RECIPES["release"] == {"repository": "CircleRadon/APro", "commit": "8251a9e"}
    for name, entry in ENTRIES.items():
        assert re.fullmatch(r"configs/apro_(boxsolov2|box2mask)/[\w.-]+\.py", entry["original"]), name
        assert entry["values"], name
        keys = [v["key"] for v in entry["values"]]
        assert len(keys) == len(set(keys)), f"{name}: a key twice"
        for v in entry["values"]:
            assert re.fullmatch(r"[\w/.-]+\.py:\d+", v["source"]), (name, v)


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_paper_config_holds_the_release_recipe(name):
    lines = drift(name, _config(name))
    assert not lines, "\n".join(lines)


def test_drift_names_entry_key_and_both_values():
    cfg = _config("solov2_r50_voc")
    cfg.optim_wrapper.optimizer.lr = 0.01
    cfg.model.test_cfg.pop("mask_thr")
    lines = drift("solov2_r50_voc", cfg)
    assert len(lines) == 2
    assert lines[0].startswith("solov2_r50_voc: optim_wrapper.optimizer.lr: this suite has 0.01, the release 5e-05 "
                               "(configs/apro_boxsolov2/box_solov2_voc_r50_fpn_3x.py:108)")
    assert "model.test_cfg.mask_thr: this suite has '<missing>', the release 0.7" in lines[1]


def test_registry_gpus_are_the_configs():
    """The workflow's GPU count per entry (registry) is the one the config's batch and schedule assume."""
    for e in _registry().experiments_in("paper"):
        if e.config is None:
            continue
        cfg = _config(e.name)
        assert e.gpus == cfg.num_gpus, e.name
        assert cfg.auto_scale_lr.base_batch_size == cfg.num_gpus * cfg.train_dataloader.batch_size, e.name
