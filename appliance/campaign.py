"""The campaign's history under revision control: a git repository per campaign
(`SPOOL/campaign/`, a work tree with its .git) holding what explains the capture:

- `config/sluice.toml` (and the maintenance windows file when [meta] names one),
- `journal.jsonl` (every event) and `notes.md` (the journal's notes, one line each, UTC),
- `meta/<kind>/<source>.<ext>`: the latest copy of each metadata source (every collected copy stays
  in SPOOL/meta/ with its time; here git shows what changed between commits),
- `tools.txt`: the versions of the programs that touched the data (sluice, sluice-capture,
  sluice-pcap, Python and the libraries that parse and draw, the peers the pipeline runs).

`sluice campaign commit` copies them in and commits when something changed (nothing to commit is
not an error); the sluice-campaign.timer runs it hourly, and `sluice meta collect` after each
pass. The repository is plain git: `git -C SPOOL/campaign log -p journal.jsonl`.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path

from appliance import __version__
from appliance.errors import SluiceError
from appliance.journal import read_events

REPO_NAME = "campaign"
LIBRARIES = ("dnspython", "matplotlib", "pyarrow", "pyroute2", "prometheus-client")
PEERS = ("tcpdump", "editcap", "mergecap", "capinfos")


def repo_path(spool: Path) -> Path:
    return spool / REPO_NAME


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    git = shutil.which("git")
    if git is None:
        raise SluiceError("git is not installed: the campaign history needs it (apt-get install git)", 2)
    env = dict(os.environ, GIT_AUTHOR_NAME="sluice", GIT_COMMITTER_NAME="sluice",
               GIT_AUTHOR_EMAIL="sluice@localhost", GIT_COMMITTER_EMAIL="sluice@localhost")
    proc = subprocess.run([git, "-C", str(repo), *args], capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise SluiceError(f"git {args[0]} in {repo}: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    return proc


def _version(argv: list[str]) -> str:
    path = shutil.which(argv[0]) or (argv[0] if os.path.isfile(argv[0]) else None)
    if path is None:
        return "not installed"
    try:
        proc = subprocess.run([path, *argv[1:]], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "did not answer"
    out = (proc.stdout or proc.stderr).strip().splitlines()
    return out[0] if out else f"exit {proc.returncode}"


def _sha256(path: str) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def tool_versions(capture_binary: str | None = None) -> str:
    """One line per program or library: its version, and for Sluice's own binaries also their
    sha256 (the version names a release, the hash the exact build)."""
    from appliance.catalog import find_pcap_binary

    lines = [f"sluice {__version__}", f"python {platform.python_version()}"]
    for lib in LIBRARIES:
        try:
            lines.append(f"{lib} {importlib.metadata.version(lib)}")
        except importlib.metadata.PackageNotFoundError:
            lines.append(f"{lib} not installed")
    binaries = [("sluice-capture", capture_binary)]
    try:
        binaries.append(("sluice-pcap", find_pcap_binary()))
    except SluiceError:
        binaries.append(("sluice-pcap", None))
    for name, binary in binaries:
        if binary and os.path.isfile(binary):
            lines.append(f"{name}: {_version([binary, '--version'])} sha256:{_sha256(binary)}")
        else:
            lines.append(f"{name} not found")
    for peer in PEERS:
        lines.append(f"{peer}: {_version([peer, '--version'])}")
    return "\n".join(lines) + "\n"


def _notes(journal: Path) -> str:
    out = []
    for r in read_events(journal, "note") if journal.exists() else []:
        when = dt.datetime.fromtimestamp(float(r["ts"]), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out.append(f"- {when} {r.get('text', '')}")
    return "\n".join(out) + ("\n" if out else "")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def commit(spool: Path, config_file: Path | None, journal: Path, maintenance: Path | None = None,
           message: str = "", tools: str | None = None) -> str | None:
    """Copy the campaign's files in and commit; the new commit's id, None when nothing changed."""
    repo = repo_path(spool)
    if not (repo / ".git").is_dir():
        repo.mkdir(parents=True, exist_ok=True)
        _git(repo, "init", "-q", "-b", "main")
    if config_file is not None and config_file.exists():
        _write(repo / "config" / "sluice.toml", config_file.read_bytes())
    if maintenance is not None and maintenance.exists():
        _write(repo / "config" / "maintenance.toml", maintenance.read_bytes())
    if journal.exists():
        _write(repo / "journal.jsonl", journal.read_bytes())
    _write(repo / "notes.md", _notes(journal).encode())
    meta = spool / "meta"
    for folder in sorted(p for p in meta.glob("*/*") if p.is_dir()) if meta.is_dir() else []:
        copies = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                        and p.suffix != ".diff")
        if copies:
            _write(repo / "meta" / folder.parent.name / (folder.name + copies[-1].suffix), copies[-1].read_bytes())
    _write(repo / "tools.txt", (tools if tools is not None else tool_versions()).encode())
    _git(repo, "add", "-A")
    if not _git(repo, "status", "--porcelain").stdout.strip():
        return None
    changed = [line[3:] for line in _git(repo, "status", "--porcelain").stdout.splitlines()]
    subject = message or "campaign: " + ", ".join(changed[:6]) + (" ..." if len(changed) > 6 else "")
    _git(repo, "commit", "-q", "-m", subject)
    return _git(repo, "rev-parse", "HEAD").stdout.strip()
