"""The pipeline's remote backup target, `ssh://root@192.0.2.2/PATH`: a real OpenSSH sshd in the
lab's capture namespace, a key generated for the test, rsync over ssh from the host namespace
where the pipeline runs. Verified copies, nothing written twice; a remote disk that fills and an
sshd that vanishes mid-copy leave the file not backed up, nothing half at its name, and the next
pass completes the backup."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.lab import netns
from appliance.lab.harness.mounts import remount, tmpfs
from tests.catalog.conftest import Spool, rows
from tests.conftest import REPO, require_tool

pytestmark = [pytest.mark.root, pytest.mark.netns]

SSHD_ADDR = "192.0.2.2"  # the capture namespace's end of the rx0 pair (tests/catalog/conftest.py)


def in_net(ns: str, argv: list[str]) -> list[str]:
    """argv in the namespace's network only: unlike `ip netns exec` (a mount namespace of its own),
    it sees the tmpfs a test mounts later."""
    return ["nsenter", f"--net=/run/netns/{ns}", *argv]


@dataclass
class Sshd:
    ns: str
    config: Path
    ssh_command: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        Path("/run/sshd").mkdir(exist_ok=True)  # its privilege separation directory
        self.proc = subprocess.Popen(in_net(self.ns, ["/usr/sbin/sshd", "-D", "-e", "-f", str(self.config)]),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            listening = netns.run_in(self.ns, ["ss", "-ltnH", f"src {SSHD_ADDR}:22"], check=False).stdout
            if listening.strip():
                return
            assert self.proc.poll() is None, self.proc.stderr.read().decode() if self.proc.stderr else ""
            time.sleep(0.05)
        raise AssertionError("sshd did not listen")

    def stop(self) -> None:
        """Every sshd of the namespace, the listener and the sessions it forked, SIGKILL."""
        for pid in netns.pids_in(self.ns):
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue  # gone already
            if comm in ("sshd", "rsync", "sha256sum", "sh"):
                subprocess.run(["kill", "-9", str(pid)], check=False)
        if self.proc is not None:
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def sshd(spool: Spool, tmp_path: Path) -> Iterator[Sshd]:
    for tool in ("sshd", "ssh-keygen", "rsync"):
        require_tool(tool)
    d = tmp_path / "ssh"
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")], check=True)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    (d / "known_hosts").write_text(f"{SSHD_ADDR} {(d / 'host_key.pub').read_text()}")
    config = d / "sshd_config"
    config.write_text(f"ListenAddress {SSHD_ADDR}:22\nHostKey {d / 'host_key'}\n"
                      f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
                      "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                      f"PidFile {d / 'sshd.pid'}\nSubsystem sftp internal-sftp\n")
    control = tempfile.mkdtemp(prefix="scm-", dir="/tmp")  # a socket path must stay under 108 bytes
    ssh_command = (f"ssh -i {d / 'client_key'} -o UserKnownHostsFile={d / 'known_hosts'} "
                   "-o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5 "
                   f"-o ControlMaster=auto -o ControlPath={control}/%C -o ControlPersist=20")  # one connection
    server = Sshd(spool.ns.cap, config, ssh_command)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(control, ignore_errors=True)


def _config(tmp: Path, spool: Path, remote: Path, ssh_command: str) -> Path:
    cfg = tmp / "sluice.toml"
    cfg.write_text(f'[capture]\ninterfaces = ["rx0"]\nspool = "{spool}"\nhost = "lab"\n'
                   f'[pipeline]\nbackup = ["ssh://root@{SSHD_ADDR}{remote}"]\nssh_command = "{ssh_command}"\n')
    return cfg


def pipeline_in(ns: str, cfg: Path) -> subprocess.CompletedProcess[bytes]:
    """`sluice pipeline run --once` from the lab's host namespace (where 192.0.2.2 is reachable)."""
    return subprocess.run(in_net(ns, [sys.executable, "-m", "appliance.cli", "pipeline", "run", "--once",
                                               "--config", str(cfg)]), capture_output=True, cwd=REPO, timeout=300)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _remote_state(copy: Path, remote: Path) -> tuple[set[str], set[str]]:
    """(files backed up per the catalog, files whose remote copy exists); asserts every remote
    copy at its final name is whole (same sha256) and no temporary is left."""
    saved = {r["path"] for r in rows(copy) if r["steps"].get("backup", {}).get("ok")}
    present = {str(p.relative_to(remote)) for p in remote.rglob("*.pcapng") if not p.name.startswith(".")}
    for rel in present:
        assert _sha(remote / rel) == _sha(copy / rel), rel
    return saved, present


def test_ssh_target_verified_and_not_written_twice(spool: Spool, sshd: Sshd, tmp_path: Path) -> None:
    copy, remote = tmp_path / "spool", tmp_path / "remote"
    shutil.copytree(spool.dir, copy, symlinks=True)
    cfg = _config(tmp_path, copy, remote, sshd.ssh_command)
    proc = pipeline_in(spool.ns.h, cfg)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    saved, present = _remote_state(copy, remote)
    assert saved == present == {r["path"] for r in rows(copy)}
    assert {r["state"] for r in rows(copy)} == {"checked"}
    mtimes = {p: p.stat().st_mtime_ns for p in remote.rglob("*.pcapng")}
    again = pipeline_in(spool.ns.h, cfg)
    assert again.returncode == 0 and b"backup 0 done" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in remote.rglob("*.pcapng")} == mtimes


def test_ssh_target_that_fills_up_is_retried(spool: Spool, sshd: Sshd, tmp_path: Path) -> None:
    copy, remote = tmp_path / "spool", tmp_path / "remote"
    shutil.copytree(spool.dir, copy, symlinks=True)
    with tmpfs(remote, "64k"):
        cfg = _config(tmp_path, copy, remote, sshd.ssh_command)
        proc = pipeline_in(spool.ns.h, cfg)
        assert proc.returncode == 1, proc.stdout.decode() + proc.stderr.decode()
        saved, present = _remote_state(copy, remote)
        failed = [r for r in rows(copy) if not r["steps"]["backup"]["ok"]]
        assert failed and saved == present and not [p for p in remote.rglob(".*") if p.is_file()]
        assert any("No space left" in r["steps"]["backup"]["error"] for r in failed), failed[0]["steps"]
        remount(remote, "size=64M")
        proc = pipeline_in(spool.ns.h, cfg)
        assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
        saved, present = _remote_state(copy, remote)
        assert saved == present == {r["path"] for r in rows(copy)}


def test_ssh_target_that_vanishes_mid_copy_is_retried(spool: Spool, sshd: Sshd, tmp_path: Path) -> None:
    """The link to the backup host is slowed (tbf) so a copy takes seconds; sshd and its
    sessions are killed while rsync writes a temporary on the remote side."""
    copy, remote = tmp_path / "spool", tmp_path / "remote"
    shutil.copytree(spool.dir, copy, symlinks=True)
    cfg = _config(tmp_path, copy, remote, sshd.ssh_command)
    netns.run_in(spool.ns.h, ["tc", "qdisc", "add", "dev", "tx0", "root", "tbf", "rate", "100kbit", "burst", "1600",
                                    "latency", "5s"])
    try:
        argv = in_net(spool.ns.h, [sys.executable, "-m", "appliance.cli", "pipeline", "run", "--once",
                                            "--config", str(cfg)])
        run = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not [p for p in remote.rglob(".*.pcapng.*") if p.is_file()]:
            time.sleep(0.02)
        assert [p for p in remote.rglob(".*.pcapng.*") if p.is_file()], "rsync never wrote its temporary"
        sshd.stop()
        out, err = run.communicate(timeout=300)
        assert run.returncode == 1, out.decode() + err.decode()
    finally:
        netns.run_in(spool.ns.h, ["tc", "qdisc", "del", "dev", "tx0", "root"], check=False)
    saved, present = _remote_state(copy, remote)  # every copy at its final name is whole
    # a copy renamed just before the connection died is whole but not verified: not backed up yet
    assert saved <= present and len(saved) < len(rows(copy))
    sshd.start()
    proc = pipeline_in(spool.ns.h, cfg)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    saved, present = _remote_state(copy, remote)
    assert saved == present == {r["path"] for r in rows(copy)}
    assert not [p for p in remote.rglob(".*") if p.is_file()]  # what the broken copy left is gone
