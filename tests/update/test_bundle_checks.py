"""`make bundle` and `sluice update install`'s checks with the real rauc and real bundles: a bundle
signed by another key, for another compatible string, unsigned or truncated is refused with one
line (exit 2) and the journal is told; nothing reaches `rauc install`. The whole install, reboot
and rollback cycle is image/update-test (qemu)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.errors import SluiceError
from appliance.journal import read_events
from appliance.update import inspect_bundle
from tests.conftest import REPO, require_tool

VERSION = "9.8.7+test"
COMMIT = "0123456789ab"


def make_bundle(tmp: Path, name: str, root: Path, pki: Path | None = None, **env: str) -> Path:
    """A bundle made by image/bundle (what `make bundle` runs), signed with PKI (default: the test's)."""
    out = tmp / f"{name}.raucb"
    pki = pki or tmp / "pki"
    full = {**os.environ, "SLUICE_BUNDLE_ROOT": str(root), "SLUICE_BUNDLE_OUT": str(out),
            "SLUICE_VERSION": VERSION, "SLUICE_GIT_COMMIT": COMMIT, "SLUICE_PKI_DIR": str(pki), **env}
    proc = subprocess.run([str(REPO / "image/bundle")], env=full, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    return out


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    for tool in ("rauc", "mksquashfs", "openssl", "mkfs.ext4"):
        require_tool(tool)
    tmp = tmp_path_factory.mktemp("bundles")
    root = tmp / "root" / "root.ext4"
    root.parent.mkdir()
    content = tmp / "content"
    content.mkdir()
    (content / "payload").write_bytes(os.urandom(64 * 1024))  # rauc wants more than one squashfs block
    subprocess.run(["truncate", "-s", "8M", str(root)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "sluice-root", "-d", str(content), str(root)], check=True)
    (root.parent / "manifest.txt").write_text("# Sluice appliance image manifest\n[packages]\nrauc=1.8-2\n")
    subprocess.run([str(REPO / "image/dev-pki"), str(tmp / "other-pki")], check=True, capture_output=True,
                   env={**os.environ, "SLUICE_PKI_NAME": "Another fleet"})
    made = {
        "good": make_bundle(tmp, "good", root),
        "otherkey": make_bundle(tmp, "otherkey", root, pki=tmp / "other-pki"),
        "othercompat": make_bundle(tmp, "othercompat", root, SLUICE_BUNDLE_COMPATIBLE="sluice-other-amd64"),
    }
    unsigned = tmp / "unsigned.raucb"
    subprocess.run(["mksquashfs", str(root.parent), str(unsigned), "-quiet", "-noappend"], check=True,
                   capture_output=True)
    made["unsigned"] = unsigned
    data = made["good"].read_bytes()
    made["truncated"] = tmp / "truncated.raucb"
    made["truncated"].write_bytes(data[: len(data) // 2])
    made["garbage"] = tmp / "garbage.raucb"
    made["garbage"].write_bytes(b"not a bundle\n" * 100)
    conf = tmp / "system.conf"
    conf.write_text("[system]\ncompatible=sluice-appliance-amd64\nbootloader=noop\n"
                    f"[keyring]\npath={tmp / 'pki' / 'ca.cert.pem'}\n")
    made["conf"] = conf
    made["dir"] = tmp
    return made


def test_good_bundle_carries_version_commit_and_manifest(bundles: dict[str, Path], tmp_path: Path) -> None:
    info = inspect_bundle(str(bundles["good"]), str(bundles["conf"]))
    assert (info.compatible, info.version, info.commit) == ("sluice-appliance-amd64", VERSION, COMMIT)
    # The bundle is verity format and holds the root filesystem and the image manifest.
    proc = subprocess.run(["rauc", f"--conf={bundles['conf']}", "info", str(bundles["good"])],
                          capture_output=True, text=True, check=True)
    assert "Bundle Format: \tverity" in proc.stdout or "verity" in proc.stdout
    out = tmp_path / "extracted"
    subprocess.run(["rauc", f"--conf={bundles['conf']}", "extract", str(bundles["good"]), str(out)],
                   capture_output=True, text=True, check=True)
    assert (out / "root.ext4").stat().st_size == 8 * 1024 * 1024
    assert "rauc=1.8-2" in (out / "image-manifest.txt").read_text()
    assert f"build={COMMIT}" in (out / "manifest.raucm").read_text()


def test_dev_pki_is_made_once(bundles: dict[str, Path]) -> None:
    pki = bundles["dir"] / "pki"
    before = {p.name: p.read_bytes() for p in pki.glob("*.pem")}
    assert set(before) == {"ca.cert.pem", "ca.key.pem", "signing.cert.pem", "signing.key.pem"}
    assert (pki / "signing.key.pem").stat().st_mode & 0o077 == 0
    subprocess.run([str(REPO / "image/dev-pki"), str(pki)], check=True)
    assert {p.name: p.read_bytes() for p in pki.glob("*.pem")} == before


@pytest.mark.parametrize(("name", "cause"), [
    ("otherkey", "its signature is not trusted by the keyring"),
    ("othercompat", "it is for 'sluice-other-amd64', this box is 'sluice-appliance-amd64'"),
    ("unsigned", "it is not signed"),
    ("truncated", "it is truncated or not a RAUC bundle"),
    ("garbage", "it is truncated or not a RAUC bundle"),
])
def test_refused_with_one_line_and_journaled(bundles: dict[str, Path], tmp_path: Path, name: str,
                                             cause: str) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    config = tmp_path / "sluice.toml"
    config.write_text(f'[capture]\ninterfaces = ["c0"]\nspool = "{spool}"\n')
    state = tmp_path / "update.json"
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "update", "install", str(bundles[name]),
                           "--rauc-conf", str(bundles["conf"]), "--config", str(config), "--state", str(state)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"sluice: refusing bundle {bundles[name]}: {cause}")
    assert "Traceback" not in proc.stderr
    assert not state.exists()  # nothing installed, nothing pending
    refused = list(read_events(spool / "journal.jsonl", "update_refused"))
    assert len(refused) == 1 and cause in refused[0]["reason"]


def test_missing_bundle_and_bad_rauc_conf(bundles: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(SluiceError, match="no such file"):
        inspect_bundle(str(tmp_path / "nope.raucb"), str(bundles["conf"]))
    with pytest.raises(SluiceError, match="cannot read RAUC's system config"):
        inspect_bundle(str(bundles["good"]), str(tmp_path / "missing.conf"))


def test_update_status_without_any_update(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "update", "status", "--state",
                           str(tmp_path / "none.json")], capture_output=True, text=True, cwd=REPO, check=True)
    doc = json.loads(proc.stdout)
    assert doc["pending"] is False and doc["last"] is None and doc["installs_total"] == 0
