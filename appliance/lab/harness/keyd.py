"""sluice-keyd served as systemd serves it: a SOCK_SEQPACKET socket with Accept=yes, one
sluice-keyd per connection with the connection on its standard input."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path
from types import TracebackType


class KeyKeeperSocket:
    """Listens on `path` (mode 0666 unless given) and runs `binary --key-dir key_dir` for each
    connection, as sluice-keyd.socket does; `keepers` are the processes started, `errors` their
    stderr once they ended. Everything stops on the way out."""

    def __init__(self, binary: Path | str, key_dir: Path | str, path: Path | str, mode: int = 0o666) -> None:
        self.binary, self.key_dir, self.path, self.mode = str(binary), str(key_dir), str(path), mode
        self.keepers: list[subprocess.Popen[bytes]] = []
        self.errors: list[str] = []
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = False

    def __enter__(self) -> KeyKeeperSocket:
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._listener.bind(self.path)
        os.chmod(self.path, self.mode)
        self._listener.listen(8)  # listening before the first writer connects: no wait needed
        self._thread = threading.Thread(target=self._serve, name="sluice-keyd.socket", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if self._closing:  # the connection of __exit__, which wakes accept
                conn.close()
                return
            with conn:
                self.keepers.append(subprocess.Popen([self.binary, "--key-dir", self.key_dir], stdin=conn.fileno(),
                                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))

    def wait_keepers(self, timeout: float = 30) -> list[int]:
        """Waits for every keeper started so far (each ends when its writer goes); their exit codes."""
        codes = []
        for p in self.keepers:
            codes.append(p.wait(timeout=timeout))
            assert p.stderr is not None
            self.errors.append(p.stderr.read().decode(errors="replace"))
        return codes

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self._closing = True
        if self._thread is not None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as wake:
                wake.connect(self.path)
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        for p in self.keepers:
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stderr is not None:
                p.stderr.close()
        Path(self.path).unlink(missing_ok=True)
