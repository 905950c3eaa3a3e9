"""One harness per peer or process that the lab, `make run`, the tests and the benches start.

Each is a context manager that starts its program, returns only once the program is really
ready (on an event it shows, never after a fixed sleep) and stops it and cleans up on the way
out, whatever happened inside:

- `process.Process`: the common part: its own session, a stop signal, then SIGKILL to the group.
- `tcpdump.Tcpdump`: ready on tcpdump's "listening on" line (dumpcap's "Capturing on").
- `netsniff.Netsniff`: ready once its packet socket is bound to the interface (/proc/PID/net/packet).
- `trafgen.Trafgen`: trafgen in its own session (it forks a worker per CPU); `trafgen.run` blocks.
- `writer.Writer`: sluice-capture; ready on its first stats line, every line collected.
- `supervise.Supervise`: `sluice supervise`; ready when its status file says the writers are up.
- `keyd.KeyKeeperSocket`: sluice-keyd behind a socket, one per connection, as systemd runs it.
- `mounts.tmpfs`, `mounts.loop_fs`: a filesystem of a given size, unmounted (and its loop device
  freed) on the way out.

They live here, beside the lab, because `sluice run` (`make run`) and bench/ use them as well
as tests/; tests/ keep only their own defaults (small rings, fast intervals) on top.
"""
