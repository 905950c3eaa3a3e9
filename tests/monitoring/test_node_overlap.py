"""Alertmanager's example inhibits node-mixin's duplicates of Sluice's alerts on the same box,
and only those (the spool's filesystem, not every filesystem), and it is valid for amtool."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.conftest import REPO, require_tool

AM = REPO / "monitoring" / "alertmanager" / "alertmanager.yml"
DUPLICATES = {"NodeRAIDDegraded": "SluiceRaidDegraded", "NodeRAIDDiskFailure": "SluiceRaidMemberFailed",
              "NodeClockNotSynchronising": "SluiceClockNotSynchronised",
              "NodeClockSkewDetected": "SluiceClockOffsetTooLarge",
              "NodeFilesystemSpaceFillingUp": "SluiceDiskFillingUp",
              "NodeFilesystemAlmostOutOfSpace": "SluiceDiskAlmostFull"}


def matches(matchers: list[str], labels: dict[str, str]) -> bool:
    for m in matchers:
        name, op, value = re.fullmatch(r'(\w+)(=~|!=|=)"(.*)"', m).groups()  # type: ignore[union-attr]
        got = labels.get(name, "")
        ok = {"=": got == value, "!=": got != value, "=~": re.fullmatch(value, got) is not None}[op]
        if not ok:
            return False
    return True


def inhibited(source: dict[str, str], target: dict[str, str]) -> bool:
    for rule in yaml.safe_load(AM.read_text())["inhibit_rules"]:
        if (matches(rule["source_matchers"], source) and matches(rule["target_matchers"], target)
                and all(source.get(k) == target.get(k) for k in rule.get("equal", []))):
            return True
    return False


def test_each_node_mixin_duplicate_is_inhibited_by_its_sluice_alert_on_the_same_box() -> None:
    for node_alert, sluice_alert in DUPLICATES.items():
        target = {"alertname": node_alert, "instance": "cap-1", "severity": "warning", "mountpoint": "/data/sluice"}
        assert inhibited({"alertname": sluice_alert, "instance": "cap-1", "severity": "warning"}, target), node_alert
        assert not inhibited({"alertname": sluice_alert, "instance": "cap-2", "severity": "warning"}, target)


def test_other_filesystems_and_other_node_alerts_are_left_alone() -> None:
    source = {"alertname": "SluiceDiskAlmostFull", "instance": "cap-1", "severity": "critical"}
    root_fs = {"alertname": "NodeFilesystemAlmostOutOfSpace", "instance": "cap-1", "severity": "critical",
               "mountpoint": "/"}
    assert not inhibited(source, root_fs)
    assert not inhibited(source, {"alertname": "NodeMemoryHighUtilization", "instance": "cap-1", "severity": "warning"})


def test_amtool_accepts_the_config() -> None:
    proc = subprocess.run([require_tool("amtool"), "check-config", str(AM)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
