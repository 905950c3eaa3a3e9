"""Which process owns a socket: socket inode -> /proc/PID/fd, and the process's name and user.

sock_diag gives a socket's inode; the process holding it is the one with an fd that links to
`socket:[INODE]`. Scanning every /proc/PID/fd is the expensive part, so it runs only when a dump
holds inodes not yet mapped, and the map keeps only inodes that are still alive. A socket shared
by several processes (a forked server, a socket passed over a unix socket) is given to the lowest
pid, and `pids` lists them all. Process details (command, user, command line) come from psutil and
are cached per (pid, start time), so a reused pid is never mistaken for the old process.
/proc is the host's, not the namespace's: the agent finds owners in any network namespace.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

MAX_PROCS = 4096  # process details kept; the least recently used go first


@dataclass(frozen=True)
class Proc:
    pid: int
    comm: str
    user: str | None
    cmdline: str


def scan_socket_inodes(wanted: set[int]) -> dict[int, list[int]]:
    """inode -> pids holding it, for the inodes in `wanted` (one pass over /proc/*/fd)."""
    found: dict[int, list[int]] = {}
    if not wanted:
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            fds = os.scandir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or not ours to read
        with fds:
            for fd in fds:
                try:
                    target = os.readlink(fd.path)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inode = int(target[8:-1])
                    if inode in wanted:
                        pids = found.setdefault(inode, [])
                        if pid not in pids:
                            pids.append(pid)
    return found


class Owners:
    """The owner of each socket inode, kept up to date across dumps."""

    def __init__(self) -> None:
        self._by_inode: dict[int, list[int]] = {}
        self._procs: dict[tuple[int, float], Proc] = {}
        self._checked: dict[int, Proc | None] = {}  # pid -> its process, checked since the last dump
        self.scans = 0

    def update(self, live_inodes: set[int]) -> None:
        """Forget inodes no longer alive; map the new ones with one /proc scan if there are any."""
        self._checked.clear()
        for inode in [i for i in self._by_inode if i not in live_inodes]:
            del self._by_inode[inode]
        unknown = {i for i in live_inodes if i and i not in self._by_inode}
        if unknown:
            self.scans += 1
            found = scan_socket_inodes(unknown)
            for inode in unknown:
                # An inode no process holds (closed in the meantime) maps to no one, and is not
                # rescanned while it lives.
                self._by_inode[inode] = sorted(found.get(inode, []))

    def pids(self, inode: int) -> list[int]:
        return self._by_inode.get(inode, [])

    def proc(self, pid: int) -> Proc | None:
        if pid in self._checked:
            return self._checked[pid]
        found = self._proc(pid)
        self._checked[pid] = found
        return found

    def _proc(self, pid: int) -> Proc | None:
        try:
            p = psutil.Process(pid)
            key = (pid, p.create_time())
        except psutil.Error:
            return None
        cached = self._procs.pop(key, None)
        if cached is None:
            try:
                with p.oneshot():
                    comm = p.name()
                    try:
                        user: str | None = p.username()
                    except (psutil.Error, KeyError):
                        user = str(p.uids().real)
                    cmdline = " ".join(p.cmdline())
            except psutil.Error:
                return None
            cached = Proc(pid=pid, comm=comm, user=user, cmdline=cmdline)
            if len(self._procs) >= MAX_PROCS:
                del self._procs[next(iter(self._procs))]
        self._procs[key] = cached  # re-inserted last: the dict's order is the LRU order
        return cached

    def owner(self, inode: int) -> tuple[Proc | None, list[int]]:
        pids = self.pids(inode)
        for pid in pids:
            proc = self.proc(pid)
            if proc is not None:
                return proc, pids
        return None, pids
