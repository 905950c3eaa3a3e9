"""The servers the lab's hosts run: an HTTP server and iperf3 on h1, dnsmasq on h2.

Each runs detached inside its host's namespace; `topology.destroy` ends them with the namespace
(it kills every process whose network namespace is the lab's), so nothing here tracks pids.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from appliance.errors import SluiceError
from appliance.lab import netns
from appliance.lab.topology import DNS_NAME, Lab

HTTP_PORT = 80
IPERF_PORT = 5201
DNS_PORT = 53
WEB_ROOT = Path("/run/sluice/lab")
PAGE_SIZE = 32 * 1024


def _need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise SluiceError(f"{program} is not installed: `make deps` installs the lab's programs")
    return path


def _spawn(ns: str, argv: list[str]) -> None:
    subprocess.Popen(netns.exec_argv(ns, argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)


def _wait_listening(lab: Lab, ns: str, port: int, proto: str, timeout: float = 10.0) -> None:
    try:
        netns.wait_listening(ns, port, proto, timeout)
    except SluiceError as err:
        raise SluiceError(f"lab {lab.id}: {err}") from None


def lease_file(lab_id: str) -> Path:
    return WEB_ROOT / f"{lab_id}-dnsmasq.leases"


def dhcp_range(lab: Lab) -> tuple[str, str]:
    base = 16 * lab.index
    return f"198.51.100.{base + 10}", f"198.51.100.{base + 13}"


def start(lab: Lab) -> None:
    h1, h2 = lab.host("h1"), lab.host("h2")
    root = WEB_ROOT / f"{lab.id}-www"
    root.mkdir(parents=True, exist_ok=True)
    lease_file(lab.id).touch()
    # A page of a few packets' size, so an HTTP exchange has full-size segments in it.
    (root / "index.html").write_bytes(b"<html>sluice lab</html>\n" + b"x" * PAGE_SIZE)
    python = shutil.which("python3") or "python3"
    _spawn(h1.ns, [python, "-m", "http.server", str(HTTP_PORT), "--bind", "::", "--directory", str(root)])
    _spawn(h1.ns, [_need("iperf3"), "-s", "-p", str(IPERF_PORT)])
    _spawn(h2.ns, [_need("dnsmasq"), "--keep-in-foreground", "--no-resolv", "--no-hosts",
                   "--bind-interfaces", f"--listen-address={h2.ipv4}", f"--listen-address={h2.ipv6}",
                   f"--host-record={DNS_NAME},{h1.ipv4},{h1.ipv6}", "--user=root", "--pid-file=",
                   "--log-facility=/dev/null", "--port", str(DNS_PORT),
                   # DHCP on the lab's /28 (above the hosts' fixed addresses), leases in a file
                   # `sluice meta collect` reads; a client in a host gets a real lease
                   f"--dhcp-range={dhcp_range(lab)[0]},{dhcp_range(lab)[1]},255.255.255.240,1h",
                   f"--dhcp-leasefile={lease_file(lab.id)}"])
    _wait_listening(lab, h1.ns, HTTP_PORT, "tcp")
    _wait_listening(lab, h1.ns, IPERF_PORT, "tcp")
    _wait_listening(lab, h2.ns, DNS_PORT, "udp")


def stop_files(lab_id: str) -> None:
    shutil.rmtree(WEB_ROOT / f"{lab_id}-www", ignore_errors=True)
    lease_file(lab_id).unlink(missing_ok=True)

