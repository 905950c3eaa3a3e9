"""systemd's notify protocol (sd_notify(3)), the few lines it takes without a library.

A message is one datagram of `KEY=VALUE` lines to the AF_UNIX socket named by $NOTIFY_SOCKET
(a path, or an abstract name when it starts with '@'). `sluice supervise` sends READY=1 once
every writer has sent its first stats line, WATCHDOG=1 from its loop (for WatchdogSec=),
STATUS= lines, and STOPPING=1 when it stops. Without $NOTIFY_SOCKET every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("sluice.sdnotify")


class Notifier:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if address.startswith("@"):
            self.address = b"\0" + address[1:].encode()
        elif address.startswith("/"):
            self.address = address
        self.watchdog_usec = _int(env.get("WATCHDOG_USEC"))
        if _int(env.get("WATCHDOG_PID")) not in (None, os.getpid()):
            self.watchdog_usec = None  # meant for another process
        self._sock: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """How often to send WATCHDOG=1: half of WatchdogSec=, as sd_watchdog_enabled(3) advises."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec else None

    def notify(self, **fields: str | int) -> bool:
        """Send KEY=VALUE lines (ready=1 -> READY=1); False when nobody listens or it failed."""
        if self.address is None:
            return False
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, self.address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("cannot notify systemd at %s: %s", self.address, exc.strerror or exc)
            return False
        self._failed = False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdecimal() and int(value) > 0 else None
