"""Encrypted publishing (`[pipeline] publish_recipients`, issue 17): every file of the publish set,
the manifest too, is an age file to the configured recipients; decrypted with their private keys
(age-keygen, ssh-keygen) it is byte for byte the set a run without recipients publishes; nothing
in clear is left in the publish folder, not after a kill -9 either; a bad recipient is one line,
exit 2."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.catalog.conftest import Spool, kill_9_at, rows, sluice
from tests.conftest import require_tool

pytestmark = [pytest.mark.root, pytest.mark.netns]

AGE_MAGIC = b"age-encryption.org/v1\n"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _setup(spool: Spool, base: Path, recipients: list[str]) -> tuple[Path, Path, Path, Path]:
    """A copy of the spool and a config that publishes it (same Crypto-PAn key every time)."""
    copy, backup, processed, publish = base / "spool", base / "backup", base / "processed", base / "publish"
    shutil.copytree(spool.dir, copy, symlinks=True)
    backup.mkdir()
    key = base / "cryptopan.key"
    key.write_text(hashlib.sha256(b"sluice publish test").hexdigest() + "\n")
    key.chmod(0o600)
    cfg = base / "sluice.toml"
    cfg.write_text(f'[capture]\ninterfaces = ["rx0"]\nspool = "{copy}"\nhost = "lab"\n'
                   f'[pipeline]\nbackup = ["{backup}"]\nprocessed = "{processed}"\npublish = "{publish}"\n'
                   f'key_file = "{key}"\npublish_recipients = {json.dumps(recipients)}\n')
    return copy, processed, publish, cfg


def _identities(tmp: Path) -> tuple[Path, str, Path, str]:
    """An age X25519 identity and an SSH ed25519 key, each with its public recipient."""
    require_tool("age")
    require_tool("ssh-keygen")
    age_key = tmp / "age.key"
    subprocess.run(["age-keygen", "-o", str(age_key)], check=True, capture_output=True)
    age_recipient = subprocess.run(["age-keygen", "-y", str(age_key)], check=True, capture_output=True,
                                   text=True).stdout.strip()
    ssh_key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "analyst", "-f", str(ssh_key)], check=True)
    return age_key, age_recipient, ssh_key, (tmp / "id_ed25519.pub").read_text().strip()


def _decrypt(path: Path, identity: Path) -> bytes:
    proc = subprocess.run(["age", "--decrypt", "-i", str(identity), str(path)], capture_output=True)
    assert proc.returncode == 0, f"{path}: {proc.stderr.decode()}"
    return proc.stdout


def _files(d: Path) -> dict[str, Path]:
    return {str(p.relative_to(d)): p for p in d.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def clear_set(spool: Spool, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The publish set of a run without recipients: what the encrypted set must decrypt to."""
    copy, _processed, publish, cfg = _setup(spool, tmp_path_factory.mktemp("clear"), [])
    proc = sluice("pipeline", "run", "--once", "--config", str(cfg))
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert {r["state"] for r in rows(copy)} == {"published"}
    return publish


def _assert_decrypts_to_the_clear_set(publish: Path, clear: Path, identity: Path) -> dict[str, object]:
    """Every file of PUBLISH is age, NAME.age decrypts to the clear set's NAME, the manifest lists
    each with its ciphertext's and its plaintext's size and sha256. Returns the manifest."""
    files = _files(publish)
    clear_files = _files(clear)
    assert files and all(name.endswith(".age") for name in files), sorted(files)
    assert all(p.read_bytes().startswith(AGE_MAGIC) for p in files.values())
    assert {name.removesuffix(".age") for name in files} == set(clear_files)
    manifest = json.loads(_decrypt(publish / "MANIFEST.json.age", identity))
    clear_manifest = json.loads((clear / "MANIFEST.json").read_text())
    assert manifest["key_id"] == clear_manifest["key_id"]
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == set(files) - {"MANIFEST.json.age"}
    clear_listed = {f["path"]: f["sha256"] for f in clear_manifest["files"]}
    for name, entry in listed.items():
        p = files[name]
        assert entry["sha256"] == _sha(p) and entry["bytes"] == p.stat().st_size
        plain = _decrypt(p, identity)
        assert plain == clear_files[name.removesuffix(".age")].read_bytes(), name
        assert entry["plaintext_sha256"] == hashlib.sha256(plain).hexdigest() == clear_listed[name.removesuffix(".age")]
        assert entry["plaintext_bytes"] == len(plain)
    return manifest


def test_publish_set_encrypted_to_two_recipients_decrypts_to_the_clear_set(
        spool: Spool, clear_set: Path, tmp_path: Path) -> None:
    age_key, age_recipient, ssh_key, ssh_recipient = _identities(tmp_path)
    copy, processed, publish, cfg = _setup(spool, tmp_path / "enc", [age_recipient, ssh_recipient])
    proc = sluice("pipeline", "run", "--once", "--config", str(cfg))
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    by_path = {r["path"]: r for r in rows(copy)}
    assert {r["state"] for r in by_path.values()} == {"published"}
    assert all(r["steps"]["publish"]["recipients"] == 2 for r in by_path.values())
    manifest = _assert_decrypts_to_the_clear_set(publish, clear_set, age_key)
    assert manifest["recipients"] == [age_recipient, ssh_recipient]
    # the other recipient reads the same set
    for name in ("MANIFEST.json.age", sorted(by_path)[0] + ".age"):
        assert _decrypt(publish / name, ssh_key) == _decrypt(publish / name, age_key)
    # no plaintext anywhere but the clear record of the manifest, beside the processed copies
    assert set(_files(processed / ".publish-staging")) == {"MANIFEST.json"}
    again = sluice("pipeline", "run", "--once", "--config", str(cfg))
    assert again.returncode == 0 and b"publish 0 done" in again.stdout
    # a key that is not a recipient's opens nothing
    stranger = tmp_path / "stranger.key"
    subprocess.run(["age-keygen", "-o", str(stranger)], check=True, capture_output=True)
    wrong = subprocess.run(["age", "--decrypt", "-i", str(stranger), str(publish / "MANIFEST.json.age")],
                           capture_output=True)
    assert wrong.returncode != 0 and not wrong.stdout


def test_kill_9_during_encrypted_publish_leaves_nothing_in_clear(spool: Spool, clear_set: Path,
                                                                 tmp_path: Path) -> None:
    age_key, age_recipient, _ssh_key, _ssh_recipient = _identities(tmp_path)
    copy, _processed, publish, cfg = _setup(spool, tmp_path / "killed", [age_recipient])
    seen_midway = 0

    def only_age_files() -> None:  # at any moment: age files and their hidden temporaries only
        nonlocal seen_midway
        for name, p in _files(publish).items() if publish.exists() else ():
            seen_midway += 1
            if not name.rsplit("/", 1)[-1].startswith("."):
                assert p.read_bytes().startswith(AGE_MAGIC), name
            else:
                assert name.endswith(".sluice-tmp"), name  # age's output under way; the next pass sweeps it

    kills = kill_9_at((0.6, 0.9, 1.2, 1.5, 1.8, 2.1, 2.4, 2.7), "pipeline", "run", "--once", "--config", str(cfg),
                      after_each=only_age_files)
    assert kills >= 1 and seen_midway >= 1
    done = sluice("pipeline", "run", "--once", "--config", str(cfg))
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert {r["state"] for r in rows(copy)} == {"published"}
    _assert_decrypts_to_the_clear_set(publish, clear_set, age_key)


def test_a_bad_recipient_is_one_line_and_exit_2(spool: Spool, tmp_path: Path) -> None:
    require_tool("age")
    good = subprocess.run(["age-keygen"], check=True, capture_output=True, text=True).stdout
    recipient = next(line.split(": ", 1)[1] for line in good.splitlines() if line.startswith("# public key: "))
    typo = recipient[:-1] + ("q" if recipient[-1] != "q" else "p")  # the Bech32 checksum catches it
    for bad in (typo, "age1notakey", "ssh-ed25519 AAAAnotbase64!", recipient.upper()):
        _copy, _processed, publish, cfg = _setup(spool, tmp_path / f"bad{len(list(tmp_path.iterdir()))}", [bad])
        for argv in (("config", "check", str(cfg)), ("pipeline", "run", "--once", "--config", str(cfg))):
            proc = sluice(*argv)
            err = proc.stderr.decode().strip()
            assert proc.returncode == 2 and len(err.splitlines()) == 1, (argv, err)
            assert "publish_recipients" in err and repr(bad) in err and "Traceback" not in err
        assert not publish.exists()


def test_a_clear_set_is_refused_once_recipients_are_set(spool: Spool, clear_set: Path, tmp_path: Path) -> None:
    """Switching encryption on over a set published in clear would leave those files in clear:
    refused in one line until the old set is moved away, then everything is published encrypted."""
    age_key, age_recipient, _ssh_key, _ssh_recipient = _identities(tmp_path)
    _copy, _processed, publish, cfg = _setup(spool, tmp_path / "switch", [age_recipient])
    shutil.copytree(clear_set, publish)
    proc = sluice("pipeline", "run", "--once", "--config", str(cfg))
    err = proc.stderr.decode().strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1 and "is in clear but publish_recipients" in err
    shutil.rmtree(publish)
    proc = sluice("pipeline", "run", "--once", "--config", str(cfg))
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    _assert_decrypts_to_the_clear_set(publish, clear_set, age_key)


def test_without_the_age_program_the_pass_stops_in_one_line(spool: Spool, tmp_path: Path) -> None:
    _age_key, age_recipient, _ssh_key, _ssh_recipient = _identities(tmp_path)
    copy, _processed, publish, cfg = _setup(spool, tmp_path / "noage", [age_recipient])
    proc = sluice("pipeline", "run", "--once", "--config", str(cfg), env={**os.environ, "PATH": "/nonexistent"})
    err = proc.stderr.decode().strip()
    assert proc.returncode == 2 and err == ("sluice: [pipeline] publish_recipients needs the age tool "
                                            "(Debian package age): not found"), err
    assert not publish.exists() and {r["state"] for r in rows(copy)} == {"closed"}
