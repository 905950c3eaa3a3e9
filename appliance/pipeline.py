"""The post-capture pipeline, first steps (issue 15): every closed file of the catalog is backed
up to every configured target, checked, repaired when damaged and de-duplicated, in that order,
each step's result recorded in the catalog (`files.steps`, `files.state`) and in the journal
(`pipeline_step`), from which `sluice catalog rebuild` restores it.

1. backup: for each target directory, the file is copied to `TARGET/<path under the spool>`
   under a hidden temporary name, fsynced, renamed, its folder fsynced, then read back and its
   sha256 compared with the original's. A file is backed up only when every target holds a
   verified copy; a target that fails (full, gone, read-only) leaves the file not backed up, with
   no temporary left, and the next pass tries again. A copy already there with the right sha256
   is not written again.
   A target `ssh://[USER@]HOST[:PORT]/PATH` gets the copy by rsync over ssh (`[pipeline]
   ssh_command`, e.g. with `-i KEY`): rsync writes a temporary name, fsyncs (`--fsync`) and
   renames; the copy is then read back on the remote host (`sha256sum` over ssh) and compared. A
   connection that drops or a remote disk that fills leaves the file not backed up; the next pass
   removes what the broken copy left and tries again.
2. check: `sluice-pcap check` of the original (`valid` false: damaged).
3. repair (with `[pipeline] processed`): a damaged file is repaired into
   `PROCESSED/repaired/<path>` (`sluice-pcap repair`); the original stays as it is.
4. dedup (with `processed`): the SPAN copies go, into `PROCESSED/<path>` (`sluice-pcap dedup`,
   from the repaired copy when there is one). sluice-pcap writes each output under a temporary
   name and renames it when whole, so an interrupted step leaves nothing half.
5. flows (with `processed`): `sluice-pcap flows` of the processed copy, written as Parquet under
   `PROCESSED/flows/host=H/date=YYYY-MM-DD/NAME.parquet` (the layout and schema of `sluice conns
   join`: appliance.conns.flowsio), one file per capture file and day, renamed when whole; with
   `[pipeline] ipfix_collector` the same flows also go to that collector as IPFIX over UDP.
6. publish (with `[pipeline] publish` and `key_file`): the processed copy anonymised (Crypto-PAn,
   `sluice-pcap anonymize --payload drop`: headers only) into `PUBLISH/<path>`, its flows (made
   from the anonymised copy, so they carry the same anonymised addresses) into
   `PUBLISH/flows/host=H/date=D/`, and `PUBLISH/MANIFEST.json` rewritten (temporary name, rename):
   every published file with its size and sha256, and the key id (`sha256:<16 hex>`), never the key.
   With `publish_recipients` (age public keys) the same files are made in PROCESSED/.publish-staging/
   and only their age ciphertexts reach PUBLISH (`NAME.age`, `MANIFEST.json.age`): nothing in clear
   is ever in the publish folder.

Each step is idempotent: a second pass over the same files does nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from appliance import catalog, pipeline_metrics
from appliance.config import Config
from appliance.conns.flowsio import read_csv, write_parquet
from appliance.errors import SluiceError
from appliance.journal import Journal, read_events

log = logging.getLogger("sluice.pipeline")

STEPS = ("backup", "check", "repair", "dedup", "flows", "publish")
CHUNK = 4 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_whole(dst: Path, fill: Callable[[BinaryIO], None]) -> None:
    """DST written by FILL under a hidden temporary name (.NAME.sluice-tmp, swept after a kill),
    fsynced, renamed, its folder fsynced: DST is whole or absent, never half."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.sluice-tmp")
    try:
        with open(tmp, "wb") as fout:
            fill(fout)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, dst)
        _fsync_dir(dst.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def copy_verified(src: Path, dst: Path, digest: str) -> bool:
    """src to dst (temporary name, fsync, rename, read back): True when written, False when a
    verified copy was there already. OSError or SluiceError when the target fails."""
    if dst.exists() and dst.stat().st_size == src.stat().st_size and sha256_file(dst) == digest:
        return False

    def copy(fout: BinaryIO) -> None:
        with open(src, "rb") as fin:
            while chunk := fin.read(CHUNK):
                fout.write(chunk)

    write_whole(dst, copy)
    if sha256_file(dst) != digest:
        raise SluiceError(f"{dst}: the copy reads back with another sha256", 1)
    return True


@dataclass(frozen=True)
class SshTarget:
    """ssh://[USER@]HOST[:PORT]/PATH"""

    login: str
    port: str
    path: str

    @staticmethod
    def parse(url: str) -> SshTarget:
        parts = urllib.parse.urlsplit(url)
        login = f"{parts.username}@{parts.hostname}" if parts.username else str(parts.hostname)
        return SshTarget(login, str(parts.port or ""), parts.path or "/")

    def ssh(self, ssh_command: str) -> list[str]:
        return [*shlex.split(ssh_command), *(["-p", self.port] if self.port else [])]


RSYNC_TIMEOUT = 60  # seconds without I/O before rsync gives up on a target that went silent


def _remote_sha256(target: SshTarget, ssh_command: str, remote: str) -> str | None:
    """The sha256 of REMOTE on the target (None when absent), after removing the temporaries an
    interrupted rsync of it left (.NAME.XXXXXX): only one pass of this box writes these names."""
    folder, name = os.path.split(remote)
    script = (f"cd {shlex.quote(folder)} 2>/dev/null || exit 0; rm -f -- .{shlex.quote(name)}.??????; "
              f"if [ -f {shlex.quote(name)} ]; then sha256sum -- {shlex.quote(name)}; fi")
    proc = subprocess.run([*target.ssh(ssh_command), target.login, script], capture_output=True, text=True,
                          timeout=RSYNC_TIMEOUT * 2)
    if proc.returncode != 0:
        said = proc.stderr.strip().splitlines()
        raise SluiceError(f"ssh {target.login}: {said[-1] if said else f'exit {proc.returncode}'}", 1)
    return proc.stdout.split()[0] if proc.stdout.strip() else None


def copy_verified_ssh(src: Path, url: str, rel: str, digest: str, ssh_command: str) -> bool:
    """src to the ssh target (rsync: temporary name, --fsync, rename; then sha256sum over ssh):
    True when written, False when a verified copy was there already."""
    target = SshTarget.parse(url)
    remote = os.path.join(target.path, rel)
    if _remote_sha256(target, ssh_command, remote) == digest:
        return False
    proc = subprocess.run(["rsync", "--fsync", "--mkpath", "--times", f"--timeout={RSYNC_TIMEOUT}",
                           "-e", shlex.join(target.ssh(ssh_command)), str(src), f"{target.login}:{remote}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line]
        raise SluiceError(f"rsync: {' | '.join(lines[:2]) or f'exit {proc.returncode}'}", 1)
    if _remote_sha256(target, ssh_command, remote) != digest:
        raise SluiceError(f"{url}/{rel}: the copy reads back with another sha256", 1)
    return True


def backup(spool: Path, rel: str, targets: list[str], ssh_command: str = "") -> dict[str, Any]:
    t0 = time.monotonic()
    digest = sha256_file(spool / rel)
    written, errors = [], []
    for target in targets:
        try:
            if target.startswith("ssh://"):
                wrote = copy_verified_ssh(spool / rel, target, rel, digest, ssh_command)
            else:
                wrote = copy_verified(spool / rel, Path(target) / rel, digest)
            if wrote:
                written.append(target)
        except (OSError, SluiceError, subprocess.TimeoutExpired) as exc:
            errors.append(f"{target}: {getattr(exc, 'strerror', None) or exc}")
    result: dict[str, Any] = {"ok": not errors and bool(targets), "sha256": digest, "targets": targets,
                              "written": written, "seconds": round(time.monotonic() - t0, 3)}
    if errors:
        result["error"] = "; ".join(errors)
    return result


def check(spool: Path, rel: str) -> dict[str, Any]:
    t0 = time.monotonic()
    proc = subprocess.run([catalog.find_pcap_binary(), "check", "--json", str(spool / rel)], capture_output=True,
                          text=True)
    result: dict[str, Any] = {"ok": proc.returncode in (0, 1), "valid": proc.returncode == 0,
                              "seconds": round(time.monotonic() - t0, 3)}
    if proc.returncode != 0:
        result["damage" if proc.returncode == 1 else "error"] = (proc.stdout.strip() or proc.stderr.strip())[-500:]
    return result


def _pcap_step(cmd: str, src: Path, out: Path) -> dict[str, Any]:
    """`sluice-pcap CMD --json SRC OUT` (OUT replaced whole or not at all)."""
    t0 = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([catalog.find_pcap_binary(), cmd, "--json", str(src), str(out)], capture_output=True,
                          text=True)
    result: dict[str, Any] = {"ok": proc.returncode == 0, "seconds": round(time.monotonic() - t0, 3)}
    if proc.returncode == 0:
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        result.update(output=str(out), sha256=sha256_file(out), packets_in=summary["packets_in"],
                      packets_out=summary["packets_out"])
    else:
        result["error"] = proc.stderr.strip()[-500:]
    return result


def repair(spool: Path, rel: str, processed: Path, steps: dict[str, Any]) -> dict[str, Any]:
    if steps.get("check", {}).get("valid"):
        return {"ok": True, "needed": False}
    return {**_pcap_step("repair", spool / rel, processed / "repaired" / rel), "needed": True}


def dedup(spool: Path, rel: str, processed: Path, steps: dict[str, Any]) -> dict[str, Any]:
    repaired = steps.get("repair", {}).get("output")
    return _pcap_step("dedup", Path(repaired) if repaired else spool / rel, processed / rel)


def capture_stem(rel: str) -> str:
    """The capture file's name without its extensions (rx0-...-000001.pcapng.zst -> rx0-...-000001)."""
    name = Path(rel).name
    for ext in (".zst", ".gz", ".pcapng", ".pcap"):
        name = name.removesuffix(ext)
    return name


def send_ipfix(path: Path, collector: str) -> int:
    """Each IPFIX message of an RFC 5655 file (`sluice-pcap flows --format ipfix`) as one UDP
    datagram to HOST:PORT; the file's first message carries the templates. Returns the count."""
    host, _, port = collector.rpartition(":")
    data = path.read_bytes()
    sent = pos = 0
    with socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET, socket.SOCK_DGRAM) as s:
        while pos + 4 <= len(data):
            (length,) = struct.unpack_from(">H", data, pos + 2)
            if length < 16:
                raise SluiceError(f"{path}: bad IPFIX message at byte {pos}", 1)
            s.sendto(data[pos:pos + length], (host.strip("[]"), int(port)))
            pos += length
            sent += 1
    return sent


def flows(rel: str, processed: Path, steps: dict[str, Any], host: str, collector: str,
          src: str = "") -> dict[str, Any]:
    """Flows of SRC (default: the processed copy) into PROCESSED/flows/."""
    t0 = time.monotonic()
    src = src or steps["dedup"]["output"]
    folder = processed / "flows"
    folder.mkdir(parents=True, exist_ok=True)
    stem = capture_stem(rel)
    tmp = folder / f".{stem}.csv.{os.getpid()}.tmp"  # swept by sweep_temporaries after a kill
    result: dict[str, Any] = {"ok": False}
    try:
        proc = subprocess.run([catalog.find_pcap_binary(), "flows", "--format", "csv", "-o", str(tmp), src],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            return {**result, "error": proc.stderr.strip()[-500:], "seconds": round(time.monotonic() - t0, 3)}
        records = list(read_csv(tmp))
        written = write_parquet(records, str(folder), host, stem=stem) if records else []
        result.update(ok=True, flows=len(records), outputs={str(p): sha256_file(p) for p in written})
        if collector:
            proc = subprocess.run([catalog.find_pcap_binary(), "flows", "--format", "ipfix", "-o", str(tmp), src],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                return {**result, "ok": False, "error": proc.stderr.strip()[-500:],
                        "seconds": round(time.monotonic() - t0, 3)}
            result["ipfix_messages"] = send_ipfix(tmp, collector)
    except (OSError, SluiceError) as exc:
        result.update(ok=False, error=str(getattr(exc, "strerror", None) or exc))
    finally:
        tmp.unlink(missing_ok=True)
    result["seconds"] = round(time.monotonic() - t0, 3)
    return result


MANIFEST = "MANIFEST.json"


def write_manifest(publish: Path, key_id: str) -> Path:
    """PUBLISH/MANIFEST.json: every file of the publish set (but itself) with size and sha256."""
    files = []
    for root, _dirs, names in os.walk(publish):
        for name in sorted(names):
            p = Path(root, name)
            if name == MANIFEST or TEMPORARY.match(name):
                continue
            files.append({"path": str(p.relative_to(publish)), "bytes": p.stat().st_size, "sha256": sha256_file(p)})
    doc = {"key_id": key_id, "anonymisation": "Crypto-PAn (sluice-pcap anonymize), payload dropped",
           "files": sorted(files, key=lambda f: f["path"])}
    final = publish / MANIFEST
    tmp = publish / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, final)
    return final


def publish(rel: str, steps: dict[str, Any], publish_dir: Path, key_file: str, host: str,
            recipients: list[str] | None = None, staging: Path | None = None) -> dict[str, Any]:
    """The anonymised copy and its flows into PUBLISH (in clear), or, with RECIPIENTS, made in
    STAGING (under PROCESSED, never in PUBLISH) and only their age ciphertexts put in PUBLISH."""
    t0 = time.monotonic()
    made = staging if recipients and staging is not None else publish_dir
    out = made / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([catalog.find_pcap_binary(), "anonymize", "--json", "--key-file", key_file,
                           "--payload", "drop", steps["dedup"]["output"], str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"ok": False, "error": proc.stderr.strip()[-500:], "seconds": round(time.monotonic() - t0, 3)}
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    flowed = flows(rel, made, steps, host, "", src=str(out))
    if not flowed["ok"]:
        return {**flowed, "seconds": round(time.monotonic() - t0, 3)}
    result = {"ok": True, "key_id": summary["key_id"], "packets_out": summary["packets_out"]}
    if made is publish_dir:
        write_manifest(publish_dir, summary["key_id"])
        outputs = {str(out): sha256_file(out), **flowed["outputs"]}
    else:
        assert recipients and staging is not None
        try:
            outputs = publish_encrypted([out, *map(Path, flowed["outputs"])], staging, publish_dir,
                                        summary["key_id"], recipients)
        except (OSError, SluiceError) as exc:
            return {"ok": False, "error": str(getattr(exc, "strerror", None) or exc),
                    "seconds": round(time.monotonic() - t0, 3)}
        result["recipients"] = len(recipients)
    return {**result, "outputs": outputs, "seconds": round(time.monotonic() - t0, 3)}


# Encrypted publishing (`[pipeline] publish_recipients`): every file of the set is an age file
# (https://age-encryption.org/v1) named NAME.age, the manifest too (MANIFEST.json.age). The
# plaintexts are made in STAGING, a hidden folder under PROCESSED (which holds the clear
# processed copies anyway), and removed once encrypted; STAGING/MANIFEST.json is the clear
# record the encrypted manifest is made from (the plaintext checksums cannot be read back
# from the ciphertexts without a private key).
AGE_SUFFIX = ".age"
STAGING = ".publish-staging"


def find_age() -> str:
    found = shutil.which("age")
    if not found:
        raise SluiceError("[pipeline] publish_recipients needs the age tool (Debian package age): not found", 2)
    return found


def age_encrypt(src: Path, dst: Path, recipients: list[str]) -> str:
    """SRC encrypted to every recipient into DST (whole or absent); the ciphertext's sha256."""
    def encrypt(fout: BinaryIO) -> None:
        argv = [find_age(), "--encrypt", *(a for r in recipients for a in ("-r", r)), str(src)]
        proc = subprocess.run(argv, stdout=fout, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            said = proc.stderr.strip().splitlines()
            raise SluiceError(f"age: {src.name}: {said[-1] if said else f'exit {proc.returncode}'}", 1)

    write_whole(dst, encrypt)
    return sha256_file(dst)


def publish_encrypted(plaintexts: list[Path], staging: Path, publish_dir: Path, key_id: str,
                      recipients: list[str]) -> dict[str, str]:
    """Each staged plaintext to PUBLISH/<its path>.age, then the manifest; the plaintexts removed
    last, so a kill at any point leaves PUBLISH with whole ciphertexts only and the step to redo."""
    entries, outputs = {}, {}
    for plain in plaintexts:
        name = str(plain.relative_to(staging)) + AGE_SUFFIX
        dst = publish_dir / name
        digest = age_encrypt(plain, dst, recipients)
        entries[name] = {"path": name, "bytes": dst.stat().st_size, "sha256": digest,
                         "plaintext_bytes": plain.stat().st_size, "plaintext_sha256": sha256_file(plain)}
        outputs[str(dst)] = digest
    write_encrypted_manifest(publish_dir, staging, key_id, recipients, entries)
    for plain in plaintexts:
        plain.unlink()
    return outputs


def write_encrypted_manifest(publish_dir: Path, staging: Path, key_id: str, recipients: list[str],
                             new: dict[str, dict[str, Any]]) -> Path:
    """PUBLISH/MANIFEST.json.age: every .age file of PUBLISH with the size and sha256 of its
    ciphertext and, when this box encrypted it, of its plaintext (from STAGING/MANIFEST.json)."""
    record = staging / MANIFEST
    known = {f["path"]: f for f in json.loads(record.read_text())["files"]} if record.exists() else {}
    known.update(new)
    files = []
    for root, _dirs, names in os.walk(publish_dir):
        for name in sorted(names):
            p = Path(root, name)
            rel = str(p.relative_to(publish_dir))
            if rel == MANIFEST + AGE_SUFFIX or TEMPORARY.match(name):
                continue
            entry = known.get(rel)
            if entry is None or entry["bytes"] != p.stat().st_size:  # not ours, or replaced since
                entry = {"path": rel, "bytes": p.stat().st_size, "sha256": sha256_file(p)}
            files.append(entry)
    doc = {"key_id": key_id, "anonymisation": "Crypto-PAn (sluice-pcap anonymize), payload dropped",
           "encryption": "age, each file NAME.age; bytes and sha256 of the ciphertext, plaintext_bytes and "
                         "plaintext_sha256 of the decrypted file",
           "recipients": recipients, "files": sorted(files, key=lambda f: f["path"])}
    text = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
    write_whole(record, lambda f: f.write(text))
    final = publish_dir / (MANIFEST + AGE_SUFFIX)
    age_encrypt(record, final, recipients)
    return final


def publish_set_mismatch(publish_dir: Path, encrypted: bool) -> str | None:
    """A file of PUBLISH that does not fit the configuration: one in clear when recipients are
    set, or an .age one when they are not (None when all fit). Mixed sets are refused: the
    pipeline never re-publishes a file whose recorded output is still there."""
    for root, _dirs, names in os.walk(publish_dir):
        for name in sorted(names):
            if TEMPORARY.match(name) or (not encrypted and name == MANIFEST):
                continue
            if name.endswith(AGE_SUFFIX) != encrypted:
                return str(Path(root, name))
    return None


def clear_staging(staging: Path) -> None:
    """Plaintexts a killed pass left in STAGING (their step runs again); the record stays."""
    for root, _dirs, names in os.walk(staging):
        for name in names:
            p = Path(root, name)
            if p != staging / MANIFEST:
                p.unlink(missing_ok=True)


def _still_there(outcome: dict[str, Any]) -> bool:
    """Recorded outputs are still there (else the step runs again). Existence is enough: every
    output is renamed into place whole, and a pass must not re-read the whole processed set."""
    outputs = [*outcome.get("outputs", {}), *([outcome["output"]] if outcome.get("output") else [])]
    return all(Path(out).exists() for out in outputs)


def state_of(steps: dict[str, Any]) -> str:
    if steps.get("publish", {}).get("ok"):
        return "published"
    if steps.get("flows", {}).get("ok"):
        return "flows"
    if steps.get("dedup", {}).get("ok"):
        return "processed"
    if steps.get("check", {}).get("ok"):
        return "checked" if steps["check"].get("valid") else "damaged"
    if steps.get("backup", {}).get("ok"):
        return "backed_up"
    return "closed"


@dataclass
class PassResult:
    done: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STEPS, 0))
    failed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STEPS, 0))
    files: int = 0


# Temporaries a pass cut short (kill -9) leaves: ours (.NAME.sluice-tmp) and sluice-pcap's
# (.NAME.PID.tmp). Only one pass runs at a time (the lock), so any found at the start are stale.
TEMPORARY = re.compile(r"^\..+\.(sluice-tmp|\d+\.tmp)$")


def sweep_temporaries(dirs: list[Path]) -> int:
    removed = 0
    for top in dirs:
        for root, _dirs, names in os.walk(top):
            for name in names:
                if TEMPORARY.match(name):
                    Path(root, name).unlink(missing_ok=True)
                    removed += 1
    return removed


def run_once(cfg: Config, progress: Progress | None = None, stop: threading.Event | None = None) -> PassResult:
    """One pass over every closed file of the catalog: each step not done yet, in order. Only one
    pass runs at a time (SPOOL/.pipeline.lock); it starts by removing what a killed pass left."""
    spool = cfg.spool
    targets = cfg.pipeline.backup
    if not targets:
        raise SluiceError("[pipeline] backup: no backup target configured; the pipeline backs up first", 2)
    for t in targets:
        if not t.startswith("ssh://") and not Path(t).is_dir():
            raise SluiceError(f"[pipeline] backup: {t}: no such directory", 2)
    processed = Path(cfg.pipeline.processed) if cfg.pipeline.processed else None
    publish_dir = Path(cfg.pipeline.publish) if cfg.pipeline.publish else None
    if publish_dir is not None and not (cfg.pipeline.key_file and processed is not None):
        raise SluiceError("[pipeline] publish needs key_file (the Crypto-PAn key) and processed", 2)
    recipients = cfg.pipeline.publish_recipients
    if publish_dir is not None and recipients:
        find_age()
    if publish_dir is not None and publish_dir.is_dir():
        odd = publish_set_mismatch(publish_dir, bool(recipients))
        if odd is not None:
            said = ("is in clear but publish_recipients is set" if recipients
                    else "is encrypted (.age) but publish_recipients is empty")
            raise SluiceError(f"[pipeline] publish: {odd} {said}: move the publish set away (or empty "
                              "the folder) and every file is published again", 2)
    lock = os.open(spool / ".pipeline.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        raise SluiceError(f"{spool / '.pipeline.lock'}: another pipeline pass is running", 2) from None
    try:
        for stale in spool.glob(f".{pipeline_metrics.STATE_FILE}.*.tmp"):
            stale.unlink(missing_ok=True)
        sweep_temporaries([Path(t) for t in targets if not t.startswith("ssh://")]
                          + [d for d in (processed, publish_dir) if d is not None])
        if processed is not None:
            clear_staging(processed / STAGING)
        return _pass(cfg, spool, targets, processed, publish_dir, progress, stop)
    finally:
        os.close(lock)


def enabled_steps(processed: Path | None, publish_dir: Path | None) -> list[str]:
    return [s for s in STEPS if s in ("backup", "check") or (processed is not None and s != "publish")
            or (s == "publish" and publish_dir is not None)]


Progress = Callable[[int, int, str, str], None]  # (steps done, steps to do, file, step)


def _pass(cfg: Config, spool: Path, targets: list[str], processed: Path | None,
          publish_dir: Path | None, progress: Progress | None = None,
          stop: threading.Event | None = None) -> PassResult:
    result = PassResult()
    db = catalog.connect(spool)
    journal = Journal(cfg.journal_path)
    enabled = enabled_steps(processed, publish_dir)
    state = pipeline_metrics.read_state(spool) or {"steps": {}}
    per_step = {s: state["steps"].setdefault(s, {}) for s in enabled}
    files = [(row["path"], json.loads(row["steps"]))
             for row in db.execute("SELECT path, steps FROM files ORDER BY first_ns, path")]
    files = [(rel, steps) for rel, steps in files if (spool / rel).exists()]
    todo = {rel: [s for s in enabled if not (steps.get(s, {}).get("ok") and _still_there(steps[s]))]
            for rel, steps in files}
    for s in enabled:
        per_step[s]["backlog"] = sum(s in todo[rel] for rel, _steps in files)
    total, finished = sum(len(t) for t in todo.values()), 0
    try:
        for rel, steps in files:
            result.files += 1
            size = (spool / rel).stat().st_size
            for step in todo[rel]:
                if stop is not None and stop.is_set():
                    return result
                if step != "backup" and not steps.get("backup", {}).get("ok"):
                    break  # nothing before its copy is safe
                if progress is not None:
                    progress(finished, total, rel, step)
                outcome = _run_step(cfg, step, spool, rel, steps, targets, processed, publish_dir)
                finished += 1
                steps[step] = {**outcome, "at": round(time.time(), 3)}
                with db:
                    db.execute("UPDATE files SET steps = ?, state = ? WHERE path = ?",
                               (json.dumps(steps, sort_keys=True), state_of(steps), rel))
                journal.append("pipeline_step", path=rel, step=step, **steps[step])
                counters = per_step[step]
                counters["seconds_total"] = round(counters.get("seconds_total", 0.0) + outcome.get("seconds", 0.0), 3)
                if outcome["ok"]:
                    result.done[step] += 1
                    counters["backlog"] = max(counters.get("backlog", 1) - 1, 0)
                    counters["files_total"] = counters.get("files_total", 0) + 1
                    counters["bytes_total"] = counters.get("bytes_total", 0) + size
                    counters["last_success"] = steps[step]["at"]
                else:
                    result.failed[step] += 1
                    counters["failures_total"] = counters.get("failures_total", 0) + 1
                    log.warning("pipeline %s %s: %s", step, rel, outcome.get("error"))
                pipeline_metrics.write_state(spool, state)
                if not outcome["ok"]:
                    break
        _backup_meta(db, spool, targets, cfg.pipeline.ssh_command, journal, result)
        if progress is not None:
            progress(finished, total, "", "")
        state["last_pass"] = round(time.time(), 3)
        pipeline_metrics.write_state(spool, state)
    finally:
        journal.close()
        db.close()
    return result


def _run_step(cfg: Config, step: str, spool: Path, rel: str, steps: dict[str, Any], targets: list[str],
              processed: Path | None, publish_dir: Path | None) -> dict[str, Any]:
    if step == "backup":
        return backup(spool, rel, targets, cfg.pipeline.ssh_command)
    if step == "check":
        return check(spool, rel)
    assert processed is not None  # enabled_steps: the later steps need it
    if step == "repair":
        return repair(spool, rel, processed, steps)
    if step == "dedup":
        return dedup(spool, rel, processed, steps)
    if step == "flows":
        return flows(rel, processed, steps, cfg.host, cfg.pipeline.ipfix_collector)
    assert publish_dir is not None
    return publish(rel, steps, publish_dir, cfg.pipeline.key_file, cfg.host, cfg.pipeline.publish_recipients,
                   processed / STAGING)


def _backup_meta(db: Any, spool: Path, targets: list[str], ssh_command: str, journal: Journal,
                 result: PassResult) -> None:
    """The metadata `sluice meta collect` catalogued (table meta_files, docs/metadata.md) is backed
    up like capture files (the backup step only: it is text, not packets)."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta_files'").fetchone():
        return
    for row in list(db.execute("SELECT path, steps FROM meta_files ORDER BY collected_ns, path")):
        rel, steps = row["path"], json.loads(row["steps"])
        if not (spool / rel).exists() or (steps.get("backup", {}).get("ok") and _still_there(steps["backup"])):
            continue
        outcome = backup(spool, rel, targets, ssh_command)
        steps["backup"] = {**outcome, "at": round(time.time(), 3)}
        with db:
            db.execute("UPDATE meta_files SET steps = ?, state = ? WHERE path = ?",
                       (json.dumps(steps, sort_keys=True), state_of(steps), rel))
        journal.append("pipeline_step", path=rel, step="backup", **steps["backup"])
        result.done["backup"] += outcome["ok"]
        result.failed["backup"] += not outcome["ok"]


def journal_steps(spool: Path) -> dict[str, dict[str, Any]]:
    """The last result of each step of each file, as the journal has it (for catalog rebuild)."""
    found: dict[str, dict[str, Any]] = {}
    for ev in read_events(spool / "journal.jsonl", "pipeline_step"):
        rel, step = ev.get("path"), ev.get("step")
        if isinstance(rel, str) and step in STEPS:
            fields = {k: v for k, v in ev.items() if k not in ("ts", "event", "path", "step")}
            found.setdefault(rel, {})[step] = fields
    return found
