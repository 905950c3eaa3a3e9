"""A real `sluice supervise` inside a network namespace, for the supervisor's integration tests."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from appliance.lab import netns
from appliance.lab.harness import supervise as harness
from tests.conftest import SLUICE_CAPTURE

FAST = """
[supervisor]
stats_interval = 0.5
stall_timeout = 5
backoff_initial = 1
backoff_max = 4
stop_timeout = 10
state_interval = 0.5
[watchdogs]
interval = 1
smart = false
span_dead_seconds = 5
"""


def write_config(path: Path, interface: str, spool: Path, extra: str = "", listen: str = "127.0.0.1:0") -> Path:
    """A config with test-friendly intervals; `extra` adds or overrides whole sections."""
    sections = {"capture": f'interfaces = ["{interface}"]\nspool = "{spool}"\nhost = "lab"\n'
                           f'binary = "{SLUICE_CAPTURE}"\nring_mb = 8\nbuffer_mb = 16\n',
                "metrics": f'listen = "{listen}"\n'}
    text = "".join(f"[{name}]\n{body}" for name, body in sections.items())
    path.write_text(text + FAST + extra)
    return path


class Supervise(harness.Supervise):
    """The supervisor harness plus what the tests read: /metrics as samples."""

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics, fetched from inside the namespace with curl."""
        port = self.state()["metrics_port"]
        out = netns.run_in(self.ns, ["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{port}/metrics"]).stdout
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(out) for s in f.samples}


def sample(metrics: dict, name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


def capture_files(spool: Path) -> list[Path]:
    """Capture files, closed or still .part: not the catalog's index sidecars (SPOOL/.index/,
    FILE.pcapng.json) or anything else hidden."""
    from appliance.watchdogs.disk import CAPTURE_SUFFIXES

    suffixes = CAPTURE_SUFFIXES + tuple(s + ".part" for s in CAPTURE_SUFFIXES)
    return sorted(p for p in spool.rglob("*") if p.is_file() and p.name.endswith(suffixes)
                  and not any(part.startswith(".") for part in p.relative_to(spool).parts))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
