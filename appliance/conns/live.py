"""The live table of `sluice conns` (TCPView's window on a terminal): redrawn after every dump.

Rows are sorted by protocol, state and local port; the header counts sockets by state and
events since the start. Plain ANSI (home, clear to end): it works in any terminal and in tmux.
"""

from __future__ import annotations

import shutil
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.conns.agent import Agent
    from appliance.conns.tracker import Tracked

COLUMNS = ("PROTO", "STATE", "LOCAL", "REMOTE", "PID", "COMMAND", "USER", "SENT", "RECV", "RETR")


def endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def row(t: Tracked) -> tuple[str, ...]:
    s = t.sock

    def num(v: int | None) -> str:
        return "" if v is None else str(v)

    return (s.proto + ("6" if s.family == 6 else ""), s.state, endpoint(s.local_addr, s.local_port),
            endpoint(s.remote_addr, s.remote_port), str(t.proc.pid) if t.proc else "",
            t.proc.comm if t.proc else "", (t.proc.user or "") if t.proc else "",
            num(s.bytes_sent), num(s.bytes_received), num(s.retransmits))


def render(agent: Agent, width: int = 160, height: int = 50) -> list[str]:
    with agent.lock:
        tracked = sorted(agent.tracker.table.values(),
                         key=lambda t: (t.sock.proto, t.sock.state, t.sock.local_port, t.sock.cookie))
        rows = [row(t) for t in tracked]
        by_state = agent.tracker.by_state()
        events = dict(agent.tracker.events)
    states = "  ".join(f"{p} {s} {n}" for (p, s), n in sorted(by_state.items()))
    head = [f"sluice conns on {agent.host}: {len(rows)} sockets, every {agent.interval:g} s   "
            f"opened {events['opened']} state {events['state']} closed {events['closed']}",
            states]
    table = [COLUMNS, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    lines = head + ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in table]
    if len(lines) > height:
        lines = lines[:height - 1] + [f"... {len(lines) - height + 1} more"]
    return [line[:width] for line in lines]


class Screen:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.out.write("\x1b[?25l")  # hide the cursor while the table redraws

    def draw(self, agent: Agent) -> None:
        size = shutil.get_terminal_size((160, 50))
        lines = render(agent, size.columns, size.lines)
        self.out.write("\x1b[H" + "\n".join(line + "\x1b[K" for line in lines) + "\n\x1b[J")
        self.out.flush()

    def close(self) -> None:
        self.out.write("\x1b[?25h")
        self.out.flush()
