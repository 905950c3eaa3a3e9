"""capture_storage with `capture_storage_luks: true`: the role's sluice-spool-luks script on real
block devices (loop devices standing in for the md array, which only the qemu guest has).

`format` makes a blank device a LUKS2 volume (4096-byte sectors, payload aligned to full
stripes) that the key file it generated opens, and never formats twice; a device holding data, a
key file others can read and a key that does not open the volume are each one line, exit 2, with
the device left as it was. `open` needs device-mapper (dm-crypt): where the kernel has it the
volume appears as /dev/mapper/NAME; where it has not (this project's build machines) the script
says so in one line. The in-guest boot with the encrypted spool mounted is `make image-test`'s."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.provisioning.chroot import have_tools, run_playbook
from tests.provisioning.test_storage_guard import render

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(have_tools() is not None, reason=str(have_tools())),
    pytest.mark.skipif(shutil.which("cryptsetup") is None, reason="cryptsetup (deps/apt/provisioning.txt)"),
]

CHUNK_KIB = 192  # x 2 data disks (RAID5 over 3): 384 KiB stripes, so 16 MiB is rounded up


def luks_script(tmp_path: Path, name: str = "spool_crypt") -> tuple[Path, Path]:
    key = tmp_path / "keys" / f"{name}.key"
    render(tmp_path, ["/dev/disk/by-id/a", "/dev/disk/by-id/b", "/dev/disk/by-id/c"], capture_storage_luks=True,
           capture_storage_luks_name=name, capture_storage_luks_key_file=str(key),
           capture_storage_chunk_kib=CHUNK_KIB)
    return tmp_path / "sluice-spool-luks", key


def run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120)


def digest(device: str) -> str:
    return hashlib.sha256(Path(device).read_bytes()).hexdigest()


def dump(device: str) -> str:
    return subprocess.run(["cryptsetup", "luksDump", device], check=True, capture_output=True, text=True).stdout


def test_format_makes_a_luks2_volume_its_own_key_opens_aligned_to_stripes_and_only_once(
        tmp_path: Path, loop_disks: list[str]) -> None:
    script, key = luks_script(tmp_path)
    first = run(script, "format", loop_disks[0])
    assert first.returncode == 0 and first.stdout.splitlines()[-1] == "changed", first.stderr
    st = key.stat()
    assert st.st_size == 64 and oct(st.st_mode & 0o777) == "0o400" and st.st_uid == 0
    assert oct(key.parent.stat().st_mode & 0o777) == "0o700"
    header = dump(loop_disks[0])
    assert re.search(r"^Version:\s+2$", header, re.M)
    assert re.search(r"^Label:\s+spool_crypt$", header, re.M)
    assert re.search(r"sector: 4096 \[bytes\]", header)
    offset = int(re.search(r"offset: (\d+) \[bytes\]", header).group(1))  # type: ignore[union-attr]
    stripe = CHUNK_KIB * 2 * 1024
    assert offset >= 16 << 20 and offset % stripe == 0 and offset - stripe < 16 << 20
    test_open = subprocess.run(["cryptsetup", "open", "--test-passphrase", "--key-file", str(key), loop_disks[0]],
                               capture_output=True)
    assert test_open.returncode == 0
    # again: nothing formatted, the same volume and key
    uuid_before, key_before, bytes_before = dump(loop_disks[0]).splitlines()[2], key.read_bytes(), digest(loop_disks[0])
    second = run(script, "format", loop_disks[0])
    assert second.returncode == 0 and second.stdout.strip() == "ok"
    assert dump(loop_disks[0]).splitlines()[2] == uuid_before and key.read_bytes() == key_before
    assert digest(loop_disks[0]) == bytes_before


def test_a_device_with_data_and_a_key_others_read_are_refused(tmp_path: Path, loop_disks: list[str]) -> None:
    script, key = luks_script(tmp_path)
    before = digest(loop_disks[1])
    refused = run(script, "format", loop_disks[1])
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"sluice-spool-luks: {loop_disks[1]} holds ext4, not LUKS; "
                                      "refusing to encrypt it (that would erase it)")
    assert digest(loop_disks[1]) == before and not key.exists()
    key.parent.mkdir(mode=0o700)
    key.write_bytes(os.urandom(64))
    key.chmod(0o644)
    blank = digest(loop_disks[0])
    loose = run(script, "format", loop_disks[0])
    assert loose.returncode == 2 and loose.stderr.strip() == (
        f"sluice-spool-luks: {key}: must be owned by root and readable by root only (chmod 0400)")
    assert digest(loop_disks[0]) == blank
    not_luks = run(script, "open", loop_disks[0])
    assert not_luks.returncode == 2 and "is not a LUKS volume (no signature)" in not_luks.stderr


def test_open_checks_the_key_then_opens_the_mapper_device(tmp_path: Path, loop_disks: list[str]) -> None:
    name = f"sluicetest_{uuid.uuid4().hex[:8]}"
    script, key = luks_script(tmp_path, name)
    assert run(script, "format", loop_disks[0]).returncode == 0
    good = key.read_bytes()
    key.chmod(0o600)
    key.write_bytes(os.urandom(64))  # another box's key
    wrong = run(script, "open", loop_disks[0])
    assert wrong.returncode == 2 and wrong.stderr.strip() == (
        f"sluice-spool-luks: {key} does not open {loop_disks[0]} (a key of another box or another volume?)")
    key.write_bytes(good)
    dm = subprocess.run(["dmsetup", "version"], capture_output=True).returncode == 0
    opened = run(script, "open", loop_disks[0])
    try:
        if dm:
            assert opened.returncode == 0 and opened.stdout.splitlines()[-1] == "changed", opened.stderr
            assert Path(f"/dev/mapper/{name}").is_block_device()
            assert run(script, "open", loop_disks[0]).stdout.strip() == "ok"
        else:  # no device-mapper in this kernel: said in one line (the qemu guest opens it)
            assert opened.returncode == 2 and opened.stderr.strip().splitlines()[-1] == (
                f"sluice-spool-luks: cannot open {loop_disks[0]} as /dev/mapper/{name} "
                "(device-mapper and dm-crypt are needed)")
    finally:
        subprocess.run(["cryptsetup", "close", name], capture_output=True)


def test_the_setup_script_puts_xfs_on_the_mapper_device(tmp_path: Path) -> None:
    """With luks the setup script formats and opens the array before XFS, and XFS goes on the
    mapper device; without, nothing of LUKS is in it."""
    disks = ["/dev/disk/by-id/a", "/dev/disk/by-id/b", "/dev/disk/by-id/c"]
    (tmp_path / "plain").mkdir()
    (tmp_path / "luks").mkdir()
    plain = render(tmp_path / "plain", disks).read_text()
    assert "sluice-spool-luks" not in plain and "FS_DEVICE=$ARRAY" in plain
    text = render(tmp_path / "luks", disks, capture_storage_luks=True).read_text()
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
    luks_at = text.index("/usr/local/sbin/sluice-spool-luks \"$step\" \"$ARRAY\"")
    assert text.index("for step in format open; do") < luks_at < text.index("FS_DEVICE=/dev/mapper/spool_crypt")
    assert text.index("FS_DEVICE=/dev/mapper/spool_crypt") < text.index('mkfs.xfs -q -L "$LABEL"')
    assert '"$FS_DEVICE" >&2' in text


def test_preflight_stops_a_switch_that_would_erase_the_spool(tmp_path: Path, loop_disks: list[str]) -> None:
    """Turning luks on over an array that holds a filesystem stops the play in its read-only
    checks, before fstab or crypttab change; a blank array passes. (/dev/md/NAME is a link to a
    loop device here: this kernel has no md.)"""
    name = f"sluicetest-{uuid.uuid4().hex[:8]}"
    md = Path("/dev/md")
    made_md = not md.exists()
    md.mkdir(exist_ok=True)
    link = md / name
    try:
        results = {}
        for kind, target in (("ext4", loop_disks[1]), ("blank", loop_disks[0])):
            link.unlink(missing_ok=True)
            link.symlink_to(target)
            results[kind] = run_playbook(Path("/dev/null"), {
                "capture_storage_disks": loop_disks, "capture_storage_check_devices": True,
                "capture_storage_luks": True, "capture_storage_array_name": name},
                playbook=Path(__file__).resolve().parent / "preflight_storage.yml")
        assert results["ext4"].returncode != 0
        assert (f"capture_storage_luks is true but /dev/md/{name} on localhost holds ext4: switching encryption on "
                "or off erases the spool") in " ".join(results["ext4"].stdout.split())
        assert results["blank"].returncode == 0, results["blank"].stdout[-2000:]
    finally:
        link.unlink(missing_ok=True)
        if made_md:
            md.rmdir()
