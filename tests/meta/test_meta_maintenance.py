"""Maintenance windows through `sluice meta collect`: journal `maintenance` events (the gap ledger
marks those seconds), and silences in a real Alertmanager that stop a box's alerts; an
Alertmanager that is down is retried on the next pass; a bad windows file is reported."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO
from tests.monitoring.live import alertmanager, free_port, http, wait_for

AM_CONFIG = "route:\n  receiver: none\nreceivers:\n  - name: none\n"


def collect(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance.cli", "meta", "collect", "--config", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def write(tmp_path: Path, url: str) -> tuple[Path, Path, Path]:
    spool, windows = tmp_path / "spool", tmp_path / "windows.toml"
    now = time.time()
    windows.write_text(f"""[[window]]
start = {now - 60:.0f}
end = {now + 3600:.0f}
boxes = ["lab", "box2"]
reason = "switch firmware"
[[window]]
start = {now + 7200:.0f}
end = {now + 9000:.0f}
boxes = ["other"]
reason = "not this box"
""")
    config = tmp_path / "sluice.toml"
    config.write_text(f'[capture]\ninterfaces = ["eth9"]\nspool = "{spool}"\nhost = "lab"\n'
                      f'[meta]\nmaintenance = "{windows}"\nalertmanager = "{url}"\nretry_delay = 0\n')
    return spool, windows, config


def test_windows_become_events_and_silences(tmp_path: Path) -> None:
    down_port = free_port(None)
    spool, windows, config = write(tmp_path, f"http://127.0.0.1:{down_port}")
    first = collect(config)  # no Alertmanager yet: events written, silences pending
    assert first.returncode == 1 and "silence not set" in first.stdout, first.stdout + first.stderr
    with alertmanager(None, tmp_path, AM_CONFIG) as am:
        config.write_text(config.read_text().replace(f"http://127.0.0.1:{down_port}", am.url))
        second = collect(config)
        assert second.returncode == 0, second.stdout + second.stderr
        assert collect(config).returncode == 0  # a third pass adds nothing
        silences = [s for s in http(None, f"{am.url}/api/v2/silences") if s["status"]["state"] == "active"]
        assert len(silences) == 1
        pending = [s for s in http(None, f"{am.url}/api/v2/silences") if s["status"]["state"] == "pending"]
        assert len(pending) == 1 and "other" in pending[0]["matchers"][0]["value"]
        assert silences[0]["matchers"][0]["name"] == "instance" and "box2" in silences[0]["matchers"][0]["value"]
        assert "switch firmware" in silences[0]["comment"]
        # the silence mutes an alert from this box, not one from another
        for inst in ("lab:9750", "elsewhere:9750"):
            am.amtool("alert", "add", "SluiceTest", f"instance={inst}", "severity=warning")

        def settled() -> dict[str, str] | None:
            """The alerts' states once the Alertmanager has both and has judged them (not "unprocessed")."""
            got = {a["labels"]["instance"]: a["status"]["state"] for a in am.alerts()}
            return got if len(got) == 2 and "unprocessed" not in got.values() else None

        state = wait_for(settled, 15, "both alerts judged", interval=0.1)
        assert state == {"lab:9750": "suppressed", "elsewhere:9750": "active"}, state
    events = [json.loads(line) for line in (spool / "journal.jsonl").read_text().splitlines()]
    maint = [e for e in events if e["event"] == "maintenance"]
    assert len(maint) == 1 and maint[0]["reason"] == "switch firmware"  # once, and only this box's
    # every window is silenced (the Alertmanager is the site's), the other box's one ahead of time
    assert [e["event"] for e in events].count("maintenance_silenced") == 2
    # the gap ledger marks the window's seconds
    gaps = subprocess.run([sys.executable, "-m", "appliance.cli", "gaps", "--config", str(config), "--from",
                           str(maint[0]["start"]), "--to", str(maint[0]["start"] + 10), "--json"],
                          cwd=REPO, capture_output=True, text=True)
    assert gaps.returncode == 0, gaps.stderr
    runs = [json.loads(line) for line in gaps.stdout.splitlines()]
    assert [r["cause"] for r in runs] == ["maintenance"] and runs[0]["end"] - runs[0]["start"] == 10
    assert len(list((spool / "meta" / "maintenance" / "windows").glob("*.json"))) == 1  # stored once, unchanged

    windows.write_text("[[window]]\nstart = 5\n")
    bad = collect(config)
    assert bad.returncode == 1 and "needs start, end, boxes, reason" in bad.stdout
