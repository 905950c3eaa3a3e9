"""Log lines that carry their level, for a terminal and for the systemd journal.

Under systemd (stderr is the journal stream named by $JOURNAL_STREAM) each line starts with the
kernel-style priority prefix `<N>` that journald turns into the entry's priority, so a warning
shows as a warning in `journalctl -p warning`. On a terminal the level is a word after the
program name ("sluice: warning: ..."); informational lines stay as they were ("sluice: ...").
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

# syslog(3) priorities, as journald reads them from a `<N>` prefix (sd-daemon(3)).
JOURNAL_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
                    logging.DEBUG: 7}


def journal_priority(level: int) -> int:
    for threshold in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if level >= threshold:
            return JOURNAL_PRIORITY[threshold]
    return JOURNAL_PRIORITY[logging.DEBUG]


def stderr_is_journal(stream: TextIO = sys.stderr, env: dict[str, str] | None = None) -> bool:
    """True when stream is the journal connection systemd gave this service ($JOURNAL_STREAM is
    "DEVICE:INODE" of that socket; a redirected stderr no longer matches it)."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not dev.isdecimal() or not ino.isdecimal():
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


class LevelFormatter(logging.Formatter):
    def __init__(self, program: str, journal: bool) -> None:
        super().__init__()
        self.program = program
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if self.journal:
            return f"<{journal_priority(record.levelno)}>{message}"
        if record.levelno >= logging.WARNING or record.levelno < logging.INFO:
            return f"{self.program}: {record.levelname.lower()}: {message}"
        return f"{self.program}: {message}"


def setup(verbose: bool = False, program: str = "sluice", stream: TextIO | None = None) -> None:
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LevelFormatter(program, stderr_is_journal(stream)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
