"""A page as headless Chromium shows it: the report tests' real browser."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
WHY_NOT = "no chromium binary on PATH (apt-get install chromium; .ci/run does)"


def rendered(page: Path) -> dict:
    """What Chromium shows of ``page``: its tables, body rows, images (and how many loaded), h2 headings.
    A probe page beside it loads it in an iframe and writes that into its own DOM, which --dump-dom prints."""
    probe = page.parent / "probe.html"
    probe.write_text(
        f'<!DOCTYPE html><html><body><iframe id="f" src="{page.name}" width="1200" height="800"></iframe>'
        '<pre id="out">pending</pre><script>'
        'document.getElementById("f").onload = function () {'
        ' var d = this.contentDocument; var imgs = Array.from(d.images);'
        ' var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;'
        ' document.getElementById("out").textContent = JSON.stringify({tables: d.querySelectorAll("table").length,'
        '  rows: d.querySelectorAll("tbody tr").length, images: imgs.length, loaded: ok,'
        '  h2: Array.from(d.querySelectorAll("h2")).map(function (h) { return h.textContent; })});'
        '};</script></body></html>')
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
           "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    probe.unlink()
    m = re.search(r'<pre id="out">(.*?)</pre>', proc.stdout, re.S)
    assert m and m.group(1) != "pending", proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(m.group(1).replace("&quot;", '"'))
