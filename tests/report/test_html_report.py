"""apro html-report: sections, relative links that exist, reuse of results, and a headless-Chromium render."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from apro import layout
from apro import registry as reg
from apro import report
from browser import CHROMIUM, WHY_NOT, rendered



def _png(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow([[0, 1], [1, 0]], cmap="viridis")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


@pytest.fixture
def run_root(tmp_path):
    """A results tree with a few metrics, a step's record, an ops table and one figure."""
    def metrics(suite, name, ap):
        p = tmp_path / reg.metrics_file(suite, name, 0)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"AP": ap, "AP50": ap + 10, "AP75": ap - 1, "seed": 0, "wall_s": 3.0}))
    metrics("smoke", "box", 1.25)
    metrics("smoke", "box_gp_lp", 3.5)
    metrics("smoke_ablation", "ablation_tree", 2.75)
    for name, miou in (("sem_point", 30.25), ("sem_point_gp_lp", 34.5), ("sem_full", 50.0)):  # semantic rows
        p = tmp_path / reg.metrics_file("smoke", name, 0)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"mIoU": miou, "aAcc": 90.0, "seed": 0, "wall_s": 3.0}))
    record = tmp_path / layout.run_record(layout.work_dir("smoke", "box", 0))
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"status": "done", "wall_s": 12.5, "peak_rss_mb": 321.0, "cpu_s": 11.0}))
    ops = tmp_path / "reports" / "benchmarks" / "ops.csv"
    ops.parent.mkdir(parents=True)
    ops.write_text("measure,ours,baseline\nGP time,0.05,0.07\n")
    figs = tmp_path / "reports" / "smoke" / "figures"
    _png(figs / "affinity_1.png")
    (figs / "figures.json").write_text(json.dumps({"figures": [
        {"file": "affinity_1.png", "kind": "affinity", "image_id": 1, "caption": "GP affinity test caption"},
        {"file": "missing.png", "kind": "affinity", "image_id": 2, "caption": "never shown"}]}))
    return tmp_path


def test_report_sections_values_and_links(run_root):
    written = report.write_html_report("smoke", results_root=run_root)
    path = written.paths["html"]
    assert path == run_root / "reports" / "smoke" / "index.html" and written.done == 5
    text = path.read_text()
    for section in ("results", "ablation", "affinity", "benchmark", "provenance"):
        assert f'id="{section}"' in text, section
    assert "<td>1.2 (single run)</td>" in text or "<td>1.3 (single run)</td>" in text  # box's AP, one decimal
    assert "+2.2 (single run) mask AP" in text or "+2.3 (single run) mask AP" in text  # 3.5 - 1.25
    assert "GP affinity test caption" in text and "never shown" not in text
    assert "<th>mIoU</th>" in text and "<td>34.5 (single run)</td>" in text  # semantic rows: mIoU column
    assert "point labels: <code>point+gp+lp</code> (sem_point_gp_lp) minus" in text
    assert "seed: <b>+4.2 (single run) mIoU</b>" in text or "seed: <b>+4.3 (single run) mIoU</b>" in text
    assert "dense labels (sem_full): 50.0 (single run)" in text
    # the results table is the summary's: supervision column, status in bold where not done
    assert "<th>supervision</th>" in text and "<td><b>not run</b></td>" in text
    assert "<td>GP time</td>" in text and "<td>321</td>" in text  # ops table; the training's recorded peak memory
    assert re.search(r"<td>mmdet</td><td>3\.\d", text)
    assert "experiments/demo/box.py" in text  # config hashes
    # the smoke suite reuses the smoke_ablation results (same overrides), never the demo's
    csv = (path.parent / "ablation.csv").read_text()
    assert "ablation_tree,2.75,results/smoke_ablation/ablation_tree" in csv
    assert "box_gp_lp,3.50,results/smoke/box_gp_lp" in csv
    # every local link and image exists, relative to the report
    links = re.findall(r'(?:src|href)="([^"#]+)"', text)
    assert any(l.startswith("figures/") for l in links) and any(l.startswith("ablation_") for l in links)
    for link in links:
        assert not link.startswith(("/", "http")), link
        assert (path.parent / link).is_file(), link


def test_report_without_any_result_says_what_is_missing(tmp_path):
    path = report.write_html_report("ablation", reg.load_registry(), tmp_path).paths["html"]
    text = path.read_text()
    assert "0 of" in text and "No affinity figures yet" in text and "No ops benchmark" in text
    assert not list(path.parent.glob("ablation_*.png"))


def test_an_ablation_group_of_unknown_experiments_names_them(tmp_path):
    """The ablation groups are the registry's (``ablations:``): checked with it."""
    import yaml

    data = yaml.safe_load(reg.default_registry().read_text())
    data["ablations"].append({"name": "x", "setting": "y", "rows": [{"experiment": "nope", "value": 1}]})
    bad = tmp_path / "experiments" / "registry.yaml"
    bad.parent.mkdir()
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(reg.RegistryError, match=r"ablation group 'x': nope not experiments of the registry"):
        reg.load_registry(bad, root=reg.REPO_ROOT)
    data["ablations"][-1]["rows"] = []
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(reg.RegistryError, match=r"at ablations/6/rows"):
        reg.load_registry(bad, root=reg.REPO_ROOT)


@pytest.mark.skipif(CHROMIUM is None, reason=WHY_NOT)
def test_report_renders_in_headless_chromium(run_root, tmp_path):
    path = report.write_html_report("smoke", reg.load_registry(), run_root).paths["html"]
    seen = rendered(path)
    assert seen["h2"] == ["Results", "Ablation", "Affinities", "Ops benchmark", "Provenance"]
    assert seen["tables"] >= 8 and seen["rows"] > 10
    assert seen["images"] >= 2 and seen["loaded"] == seen["images"], seen
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,2400", path.as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10000
