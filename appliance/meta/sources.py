"""Where each metadata source's text comes from: run locally, in a network namespace, or over ssh.

A source names `ssh = "user@host"` (BatchMode, the appliance's key) or `netns = "NAME"` or
neither (this machine). Commands are argv lists or strings split with shlex; files are read with
`cat` over ssh, directly otherwise.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

from appliance.errors import SluiceError

TIMEOUT = 60.0


def _wrap(source: dict[str, Any], argv: list[str]) -> list[str]:
    if source.get("ssh"):
        return ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", str(source["ssh"]), "--",
                " ".join(shlex.quote(a) for a in argv)]
    if source.get("netns"):
        return ["ip", "netns", "exec", str(source["netns"]), *argv]
    return argv


def run(source: dict[str, Any], command: str | list[str]) -> str:
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    try:
        proc = subprocess.run(_wrap(source, argv), capture_output=True, text=True, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SluiceError(f"{' '.join(argv)}: {getattr(exc, 'strerror', None) or exc}") from None
    if proc.returncode != 0:
        err = proc.stderr.strip().splitlines()
        raise SluiceError(f"{' '.join(argv)}: exit {proc.returncode}: {err[-1] if err else 'no message'}")
    return proc.stdout


def read(source: dict[str, Any], path: str) -> str:
    if source.get("ssh") or source.get("netns"):
        return run(source, ["cat", path])
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SluiceError(f"{path}: {exc.strerror}") from None
