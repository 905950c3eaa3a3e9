"""Shared fixtures: markers for root/namespace tests and namespaces that always get cleaned up."""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.lab import netns

REPO = Path(__file__).resolve().parent.parent
NATIVE_BUILD = REPO / "native" / "build"
SLUICE_CAPTURE = NATIVE_BUILD / "sluice-capture"
SLUICE_PCAP = NATIVE_BUILD / "sluice-pcap"
SLUICE_KEYD = NATIVE_BUILD / "sluice-keyd"


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background of a non-interactive shell (`nohup make test &`) inherits
    # SIGINT ignored, and so would every program the tests start (SIG_IGN survives exec): the
    # Ctrl-C tests of `sluice run` and `sluice selftest` then saw their SIGINT ignored. With a
    # handler here the programs start with the default action, as from a terminal.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces)")
    for item in items:
        if "root" in item.keywords or "netns" in item.keywords:
            item.add_marker(skip)


def unique_name(prefix: str = "t") -> str:
    """A short unique name (interface names are limited to 15 characters)."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: `make test` installs it via deps/apt")
    return path


@dataclass
class VethNs:
    """One namespace holding a veth pair: traffic sent on `tx` arrives on `rx`."""

    ns: str
    tx: str
    rx: str

    def run(self, argv: list[str], **kwargs: object):  # noqa: ANN201
        return netns.run_in(self.ns, argv, **kwargs)

    def argv(self, argv: list[str]) -> list[str]:
        return netns.exec_argv(self.ns, argv)


@pytest.fixture
def veth_ns() -> Iterator[VethNs]:
    """A fresh namespace `sluice-t-XXXXXXXX` with a veth pair tx<->rx, removed whatever happens."""
    name = unique_name("sluice-t-")
    netns.add_namespace(name)
    try:
        netns.ip("-n", name, "link", "add", "tx0", "type", "veth", "peer", "name", "rx0")
        netns.ip("-n", name, "link", "set", "tx0", "up")
        netns.ip("-n", name, "link", "set", "rx0", "up")
        for ifname in ("tx0", "rx0"):
            # No IPv6 chatter (router solicitations, DAD) on the test link.
            netns.run_in(name, ["sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1"])
        yield VethNs(ns=name, tx="tx0", rx="rx0")
    finally:
        netns.delete_namespace(name)


@pytest.fixture
def lab() -> Iterator[object]:
    """A whole lab of its own (hosts, switch, SPAN port, servers), removed whatever happens."""
    from appliance.lab.commands import lab_up
    from appliance.lab.topology import destroy

    lab_id = unique_name("t")
    try:
        built = lab_up(lab_id)
        yield built
    finally:
        destroy(lab_id)
