"""The capture node's metrics firewall: every allowed source is checked before the rules are
written (a host name once made nft refuse the whole file, leaving the port open), the rendered
file loads with nft in a private network namespace, and sluice.service requires the firewall."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.provisioning.chroot import PROVISIONING, run_playbook

HERE = Path(__file__).resolve().parent
ROLE = PROVISIONING / "roles" / "capture_node"

pytestmark = pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v ansible-playbook && command -v nft"],
                                               capture_output=True).returncode != 0,
                                reason="ansible-playbook and nft are installed by `make test` (deps/apt)")


def render(tmp_path: Path, sources: list[object]) -> subprocess.CompletedProcess[str]:
    return run_playbook(Path("/dev/null"), {"render_dir": str(tmp_path), "capture_node_metrics_allowed_sources":
                                            sources, "ansible_managed": "test"},
                        playbook=HERE / "render_metrics_firewall.yml")


def nft_in_private_netns(rules: Path) -> subprocess.CompletedProcess[str]:
    script = f"nft -c -f {rules} && nft -f {rules} && nft -j list table inet sluice_metrics"
    return subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=30)


@pytest.mark.root
def test_addresses_and_networks_render_rules_that_load(tmp_path: Path) -> None:
    good = ["192.0.2.5", "198.51.100.0/24", "2001:db8::5", "2001:db8:1::/48", "::1"]
    result = render(tmp_path, good)
    assert result.returncode == 0, result.stdout[-3000:]
    loaded = nft_in_private_netns(tmp_path / "metrics.nft")
    assert loaded.returncode == 0, loaded.stderr
    text = json.dumps(json.loads(loaded.stdout))
    for address in ("192.0.2.5", "198.51.100.0", "2001:db8::5", "2001:db8:1::"):
        assert address in text, (address, text[:2000])


@pytest.mark.parametrize("bad", ["monitor.example.org", "192.0.2.300", "192.0.2.0/33", "2001:db8:::1",
                                 "2001:db8::1::2", "beef", "192.0.2.5; flush ruleset", 9750])
def test_a_source_that_is_not_an_address_is_refused_before_any_rule_is_written(tmp_path: Path,
                                                                                bad: object) -> None:
    result = render(tmp_path, ["192.0.2.5", bad])
    assert result.returncode != 0
    assert f"capture_node_metrics_allowed_sources: {bad} is not an IPv4 or IPv6" in result.stdout, \
        result.stdout[-3000:]
    assert not (tmp_path / "metrics.nft").exists()


def test_the_supervisor_unit_requires_the_firewall() -> None:
    unit = (PROVISIONING.parent / "packaging" / "systemd" / "sluice.service").read_text()
    assert "Requires=sluice-firewall.service" in unit
    after = next(line for line in unit.splitlines() if line.startswith("After="))
    assert "sluice-firewall.service" in after
    # systemd knows when the capture runs, restarts a hung loop, and does not retry a config that
    # cannot work (the supervisor exits 2 for it).
    for line in ("Type=notify", "NotifyAccess=main", "WatchdogSec=120", "RestartPreventExitStatus=2"):
        assert line in unit.splitlines(), line
    firewall = (ROLE / "templates" / "sluice-firewall.service.j2").read_text()
    assert "Before=network-pre.target sluice.service" in firewall
