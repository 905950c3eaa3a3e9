"""`sluice report` of a real supervised capture in the lab (traffic, a frozen writer whose ring
overflows, a killed writer, a note), rendered in headless Chromium: the page has its summary,
the gap ledger's rows and events, and every image loads with its size; the screenshot is kept in
the test's folder (`report/shot.png`) for a person to look at."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.lab import traffic
from tests.conftest import REPO, require_tool
from tests.supervisor.running import Supervise, write_config

pytestmark = [pytest.mark.root, pytest.mark.netns]

CHECK_PAGE = """<!DOCTYPE html><html><body><pre id="out">loading</pre><script>
const srcs = %s; const out = [];
let left = srcs.length;
for (const s of srcs) { const i = new Image();
  i.onload = () => { out.push(s + " " + i.naturalWidth + "x" + i.naturalHeight); if (--left === 0) done(); };
  i.onerror = () => { out.push(s + " ERROR"); if (--left === 0) done(); };
  i.src = s; }
function done() { document.getElementById("out").textContent = out.sort().join("\\n"); }
</script></body></html>"""


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("chromium"), "--headless=new", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--virtual-time-budget=5000", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # about 100 s on a loaded 2-core machine (a capture, three Chromium runs)
def test_report_of_a_supervised_capture(lab, tmp_path: Path) -> None:  # noqa: ANN001
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", lab.capture_if, spool, extra="[nic]\ntune = false\n")
    t0 = time.time()
    with Supervise(lab.capture_ns, cfg, spool) as sup:
        for _ in range(3):
            traffic.http_get(lab, "h2", "h1")
            traffic.dns_query(lab, "h3")
        traffic.flood(lab, "h1", "h2", count=3000, size=600)
        pid = sup.state()["writers"][0]["pid"]
        subprocess.run(["kill", "-STOP", str(pid)], check=True)
        try:
            traffic.flood(lab, "h1", "h2", count=30_000, size=1442)
        finally:
            subprocess.run(["kill", "-CONT", str(pid)], check=True)
        sup.wait_for(lambda s: s["writers"][0]["totals"]["kernel_drops"] > 0, 15, "kernel drops counted")
        time.sleep(1.5)  # deliberate: seconds between the thaw and the kill, for the ledger to tell them apart
        subprocess.run(["kill", "-9", str(pid)], check=True)
        sup.wait_for(lambda s: s["writers"][0]["up"] and s["writers"][0]["pid"] not in (None, pid), 15, "writer back")
        subprocess.run([sys.executable, "-m", "appliance.cli", "notes", "add", "--config", str(cfg),
                        "report test note"], cwd=REPO, check=True, capture_output=True)
        traffic.flood(lab, "h1", "h2", count=2000, size=900)
        time.sleep(2.0)  # deliberate: whole seconds between the restart and the stop
        assert sup.stop() == 0
    t_end = time.time() + 1

    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "report", "--config", str(cfg), "--from", str(t0),
                           "--to", str(t_end), "-o", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    page = (out / "index.html").read_text()

    gaps = subprocess.run([sys.executable, "-m", "appliance.cli", "gaps", "--config", str(cfg), "--from", str(t0),
                           "--to", str(t_end), "--json"], cwd=REPO, capture_output=True, text=True)
    runs = [json.loads(line) for line in gaps.stdout.splitlines()]
    assert {"kernel_drops", "writer_down"} <= {r["cause"] for r in runs}

    # what Chromium makes of the page: the summary, one table row per run, the note among the events
    dom = chromium("--dump-dom", (out / "index.html").as_uri()).stdout
    assert 'id="summary"' in dom and "kernel_drops" in dom and "report test note" in dom
    table = dom[dom.index('id="gaps"'):dom.index("</table>", dom.index('id="gaps"'))]
    assert table.count("<tr>") == len(runs) + 1
    import sqlite3

    packets = sqlite3.connect(spool / "catalog.sqlite").execute("SELECT sum(packets) FROM files").fetchone()[0]
    assert f"{packets:,} packets" in dom
    lost = sum(r["lost"] or 0 for r in runs if r["cause"] == "kernel_drops")
    assert lost > 0 and f"{lost:,} packets lost" in dom

    # every image of the page loads in Chromium with the size matplotlib gave it
    images = sorted({part.split('"')[0] for part in page.split('src="')[1:]})
    assert {"timeline.png", "causes.png", "talkers.png", "ports.png"} <= set(images)
    (out / "check.html").write_text(CHECK_PAGE % json.dumps(images))
    loaded = chromium("--dump-dom", (out / "check.html").as_uri()).stdout
    from PIL import Image

    for name in images:
        with Image.open(out / name) as im:
            assert f"{name} {im.width}x{im.height}" in loaded, loaded
    # the screenshot is a rendered page, not a blank one
    shot = chromium("--window-size=1200,1800", f"--screenshot={out / 'shot.png'}", (out / "index.html").as_uri())
    assert shot.returncode == 0 and (out / "shot.png").exists(), shot.stderr[-500:]
    with Image.open(out / "shot.png") as im:
        assert len(im.convert("RGB").getcolors(1 << 20) or []) > 50
    # the timeline covers the window and the kill is inside it
    assert math.floor(t0) <= min(r["start"] for r in runs) and max(r["end"] for r in runs) <= math.ceil(t_end)
