"""sluice-capture --key-dir and --key-socket (issue 17): a Crypto-PAn key per wall-clock period,
kept in a 0700 folder of root's by a key keeper (a process the writer forks before it drops to an
unprivileged user, or sluice-keyd behind a socket, as systemd runs it) while the writer runs as
`nobody` under seccomp. A capture across key periods gives files with different key ids, each
file's frames equal byte for byte to the plain capture anonymised offline by sluice-pcap with the
key its SHB names; the keys are root's 0600 files. A bad key folder: one line, exit 2, nothing
captured."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.journal import read_events
from appliance.lab import netns
from appliance.lab.harness.keyd import KeyKeeperSocket
from tests.capture.capfiles import read_capture
from tests.capture.conftest import mixed_traffic, start_writer
from tests.capture.test_anonymize_capture import CLOSED_PORT, MARK, between
from tests.capture.test_privilege import assert_unprivileged, proc_status
from tests.conftest import SLUICE_KEYD, SLUICE_PCAP
from tests.supervisor.running import Supervise, capture_files, write_config

pytestmark = [pytest.mark.root, pytest.mark.netns]

USER, GROUP = "nobody", "nogroup"  # present on every Debian system
PERIOD_S = 2
KEY_NAME = re.compile(r"^\d{8}T\d{6}Z\.key$")


@pytest.fixture
def root_dir() -> Iterator[Path]:
    """A folder the unprivileged user can reach (pytest's tmp_path is root's 0700)."""
    root = Path(tempfile.mkdtemp(prefix="sluice-keys-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def owned_by_user(path: Path, mode: int) -> Path:
    path.mkdir(mode=mode)
    path.chmod(mode)
    os.chown(path, pwd.getpwnam(USER).pw_uid, grp.getgrnam(GROUP).gr_gid)
    return path


def shb_key(path: Path) -> tuple[str, str]:
    """The key id and the key file an anonymised file's SHB comment names."""
    text = b"".join(v for values in read_capture(path).shb_options.values() for v in values).decode(errors="replace")
    m = re.search(r"key id (sha256:[0-9a-f]{16}), key file (\d{8}T\d{6}Z\.key)", text)
    assert m, text
    return m.group(1), m.group(2)


def frames(path: Path) -> list[tuple[int, bytes]]:
    return [(p.origlen, p.data) for p in read_capture(path).packets]


def assert_root_keeper(writer_pid: int) -> None:
    """The writer's one child: the key keeper, root with no capability, under its own filter."""
    children = Path(f"/proc/{writer_pid}/task/{writer_pid}/children").read_text().split()
    assert len(children) == 1, children
    st = proc_status(int(children[0]))
    assert st["Name"] == "sluice-keeper" and st["Uid"].split() == ["0"] * 4, (st["Name"], st["Uid"])
    for caps in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert st[caps] == "0000000000000000", (caps, st[caps])
    assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", st


def assert_root_keys(keys: Path, at_least: int) -> list[Path]:
    """The keys: root's 0600 files in root's 0700 folder, one per period met, no leftovers."""
    key_files = sorted(keys.iterdir())
    assert len(key_files) >= at_least and all(KEY_NAME.match(k.name) for k in key_files), key_files
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700 and keys.stat().st_uid == 0
    for k in key_files:
        assert stat.S_IMODE(k.stat().st_mode) == 0o600 and k.stat().st_uid == 0, (k, oct(k.stat().st_mode))
    return key_files


def root_keys(path: Path) -> Path:
    path.mkdir(mode=0o700)
    path.chmod(0o700)
    return path


@pytest.mark.parametrize("keeper", ["forked", "sluice-keyd"])
def test_a_capture_across_key_periods_gives_a_key_per_file_each_equal_to_offline(
        capture_binary, link, root_dir: Path, tmp_path: Path, keeper: str) -> None:  # noqa: ANN001
    keys = root_keys(root_dir / "keys")
    anon_dir = owned_by_user(root_dir / "anon", 0o750)
    with KeyKeeperSocket(SLUICE_KEYD, keys, root_dir / "keyd.sock") as keyd:
        key_flag = ["--key-dir", str(keys)] if keeper == "forked" else ["--key-socket", keyd.path]
        capture_across_key_periods(capture_binary, link, keys, anon_dir, tmp_path, key_flag)
        if keeper == "sluice-keyd":  # one sluice-keyd for the writer, gone with it, cleanly
            assert keyd.wait_keepers() == [0], keyd.errors


def capture_across_key_periods(capture_binary, link, keys: Path, anon_dir: Path, tmp_path: Path,  # noqa: ANN001
                               key_flag: list[str]) -> None:
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    plain = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(plain_dir)])
    anon = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(anon_dir), "--user", USER,
                                                   "--group", GROUP, *key_flag,
                                                   "--key-rotate-seconds", str(PERIOD_S)])
    try:
        plain.wait_ready()
        anon.wait_ready()
        assert_unprivileged(anon.pid)
        if "--key-dir" in key_flag:
            assert_root_keeper(anon.pid)
        marked_at = time.time_ns()
        netns.run_in(link.h, [sys.executable, "-c", MARK, link.cap_ip, "sluice-mark-start"])
        mixed_traffic(link)

        def closed_after_mark() -> bool:
            return any(f["packets"] and f["last_ns"] >= marked_at for f in anon.files())

        # past at least one key period's end (a file with marked traffic closed), then the mix again
        deadline = time.monotonic() + 3 * PERIOD_S + 10
        while not closed_after_mark() and time.monotonic() < deadline:
            netns.run_in(link.h, ["ping", "-c", "3", "-i", "0.05", link.cap_ip])
        assert closed_after_mark(), "no key rotation closed a file"
        mixed_traffic(link)
        netns.run_in(link.h, [sys.executable, "-c", CLOSED_PORT, link.cap_ip, link.cap_ip6])
        netns.run_in(link.h, [sys.executable, "-c", MARK, link.cap_ip, "sluice-mark-end"])
    finally:
        assert anon.stop() == 0 and plain.stop() == 0
    assert anon.final()["writer_drops"] == 0 and plain.final()["writer_drops"] == 0
    plain_files, anon_files = sorted(plain_dir.glob("*.pcapng")), sorted(anon_dir.glob("*.pcapng"))
    assert len(plain_files) == 1, plain_files
    assert_root_keys(keys, 2)
    # each file against the plain capture anonymised offline with the key its SHB names
    offline: dict[str, list] = {}
    by_file = []
    for f in anon_files:
        key_id, key_name = shb_key(f)
        if key_id not in offline:
            out = tmp_path / f"offline-{key_name}.pcapng"
            p = subprocess.run([str(SLUICE_PCAP), "anonymize", "--key-file", str(keys / key_name),
                                str(plain_files[0]), str(out)], capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, p.stderr
            assert f"key id {key_id}" in p.stdout, (p.stdout, key_id)  # the SHB names the right key
            offline[key_id] = frames(out)
        by_file.append((key_id, frames(f)))
    assert len(offline) >= 2, "every file has the same key"
    # between the marks (the two writers start apart: the first frames of one may be missing in
    # the other), file by file in order
    marked = between([(n, key_id, *d) for n, (key_id, got) in enumerate(by_file) for d in got])
    files_seen = sorted({n for n, *_ in marked})
    assert len({by_file[n][0] for n in files_seen}) >= 2, "the marked traffic met one key only"
    for n in files_seen:
        key_id = by_file[n][0]
        got = Counter((length, data) for m, _, length, data in marked if m == n)
        # as multisets: two sockets on one interface may get two frames from two CPUs in either order
        not_offline = got - Counter(offline[key_id])
        assert not not_offline, f"{sum(not_offline.values())} of {sum(got.values())} frames of a file of key " \
                                f"{key_id} are not the plain capture's anonymised by sluice-pcap with that key"
    # together every frame sluice-pcap keeps of the plain capture between the marks, none twice
    assert len(marked) == len(between(next(iter(offline.values())))) > 100


def test_a_writer_restarted_within_a_period_goes_on_with_its_key(capture_binary, link, tmp_path: Path) -> None:  # noqa: ANN001
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    plain = tmp_path / "plain"
    plain.mkdir()
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(plain)])
    try:
        w.wait_ready()
        netns.run_in(link.h, ["ping", "-c", "3", "-i", "0.05", link.cap_ip])
    finally:
        assert w.stop() == 0
    ids = set()
    for run in ("a", "b"):
        out = tmp_path / run
        out.mkdir()
        p = subprocess.run([str(capture_binary), "-r", str(next(plain.glob("*.pcapng"))), "-w", str(out),
                            "--key-dir", str(keys), "--key-rotate-seconds", "86400"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        ids.add(shb_key(next(out.glob("*.pcapng"))))
    assert len(ids) == 1 and len(list(keys.iterdir())) == 1, (ids, list(keys.iterdir()))


@pytest.mark.parametrize(("mode", "extra", "message"), [
    (0o750, [], "group or others have access"),
    (0o700, ["--anonymize", "/etc/hostname"], "give one of --anonymize KEYFILE, --key-dir DIR or --key-socket PATH"),
    (None, [], "No such file"),
])
def test_a_bad_key_folder_is_one_line_exit_2_and_nothing_captured(capture_binary, tmp_path: Path, mode: int | None,  # noqa: ANN001
                                                                  extra: list[str], message: str) -> None:
    keys = tmp_path / "keys"
    if mode is not None:
        keys.mkdir()
        keys.chmod(mode)
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.run([str(capture_binary), "-i", "lo", "-w", str(out), "--key-dir", str(keys), *extra],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and message in p.stderr, p.stderr
    assert not list(out.iterdir()), "something was written"
    assert mode is None or not list(keys.iterdir()), "a key was made"


def test_a_key_folder_of_another_user_is_refused(capture_binary, tmp_path: Path) -> None:  # noqa: ANN001
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    os.chown(keys, pwd.getpwnam(USER).pw_uid, -1)  # the writer's user-to-be: the keeper stays root
    p = subprocess.run([str(capture_binary), "-i", "lo", "-w", str(tmp_path), "--key-dir", str(keys), "--user", USER],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "not owned by the user the key keeper runs as" in p.stderr, p.stderr


def test_key_rotate_seconds_needs_a_key_folder(capture_binary, tmp_path: Path) -> None:  # noqa: ANN001
    p = subprocess.run([str(capture_binary), "-i", "lo", "-w", str(tmp_path), "--key-rotate-seconds", "60"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--key-rotate-seconds needs --key-dir or --key-socket" in p.stderr, p.stderr


# IPv4/UDP frames from 192.0.2.1 to 192.0.2.2, numbered, at a steady rate (a link without addresses)
UDP_FRAMES = r"""
import socket, struct, sys, time
ifname, seconds = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    return ~(t + (t >> 16)) & 0xffff
end, i = time.monotonic() + seconds, 0
while time.monotonic() < end:
    payload = struct.pack("!I", i) + b"sluice" * 10
    udp = struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xffff, 0, 64, 17, 0,
                     bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s.send(bytes.fromhex("02aabbccdd02" "02aabbccdd01" "0800") + ip + udp)
    i += 1
    time.sleep(0.01)
"""


def test_the_supervisors_writers_rotate_keys_in_the_configured_folder(veth_ns, root_dir: Path) -> None:  # noqa: ANN001
    keys = root_keys(root_dir / "keys")
    spool = root_dir / "spool"
    cfg = write_config(root_dir / "sluice.toml", veth_ns.rx, spool,
                       extra=f'[privacy]\nkey_dir = "{keys}"\nkey_rotate_seconds = 1\n')
    cfg.write_text(cfg.read_text().replace("[capture]\n", f'[capture]\nuser = "{USER}"\nreaders_group = "{GROUP}"\n'))
    with Supervise(veth_ns.ns, cfg, spool) as sup:
        netns.run_in(veth_ns.ns, [sys.executable, "-c", UDP_FRAMES, veth_ns.tx, "3.5"], timeout=60)
        assert sup.stop() == 0
    files = [f for f in capture_files(spool) if f.name.endswith(".pcapng")]
    with_packets = [f for f in files if read_capture(f).packets]
    ids = {shb_key(f) for f in with_packets}
    assert len(ids) >= 3, ids  # 3.5 s of traffic over 1 s key periods
    for key_id, key_name in ids:
        key = keys / key_name
        st = key.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0, key
        p = subprocess.run([str(SLUICE_PCAP), "anonymize", "--key-file", str(key), str(with_packets[0]),
                            str(root_dir / "check.pcapng")], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and f"key id {key_id}" in p.stdout, p.stdout + p.stderr
    every = b"".join(f.read_bytes() for f in files)
    assert bytes([192, 0, 2, 1]) not in every and bytes([192, 0, 2, 2]) not in every, "an address in clear"
    # one writer all along: the keys rotated in it, not through restarts
    starts = [e for e in read_events(spool / "journal.jsonl") if e["event"] == "writer_start"]
    assert len(starts) == 1, starts


def test_sluice_keyd_refuses_a_folder_open_to_others_and_the_writer_captures_nothing(
        capture_binary, root_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    keys = root_dir / "keys"
    keys.mkdir(mode=0o750)
    keys.chmod(0o750)
    out = tmp_path / "out"
    out.mkdir()
    with KeyKeeperSocket(SLUICE_KEYD, keys, root_dir / "keyd.sock") as keyd:
        p = subprocess.run([str(capture_binary), "-i", "lo", "-w", str(out), "--key-socket", keyd.path],
                           capture_output=True, text=True, timeout=30)
        assert keyd.wait_keepers() == [2]
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "key keeper" in p.stderr, p.stderr
    assert keyd.errors[0].count("\n") == 1 and "group or others have access" in keyd.errors[0], keyd.errors
    assert not list(out.iterdir()) and not list(keys.iterdir())


def test_a_missing_key_socket_is_one_line_exit_2(capture_binary, tmp_path: Path) -> None:  # noqa: ANN001
    p = subprocess.run([str(capture_binary), "-i", "lo", "-w", str(tmp_path), "--key-socket",
                        str(tmp_path / "none.sock")], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "No such file" in p.stderr, p.stderr
    assert not list(tmp_path.glob("*.pcapng*"))


def test_sluice_keyd_wants_a_socket_on_its_standard_input(tmp_path: Path) -> None:
    keys = root_keys(tmp_path / "keys")
    p = subprocess.run([str(SLUICE_KEYD), "--key-dir", str(keys)], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "SOCK_SEQPACKET" in p.stderr, p.stderr
