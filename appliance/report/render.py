"""The report page: PNG plots (matplotlib, Agg: no display) and one HTML file that names them.

One figure shares the time axis: packets/s and bits/s per interface, the gap ledger as a
timeline (a row per interface, a colour per cause), the spool's fill, and the journal's events as
vertical lines through all of them with their names on top. Beside it: drops by cause, top
talkers and ports, backup progress (when the pipeline has backed files up). A paragraph on top
says it in words.
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from appliance.report.data import EVENTS, Window  # noqa: E402
from appliance.status import human_bytes  # noqa: E402
from appliance.timespec import format_ns  # noqa: E402

CAUSE_COLOURS = {"kernel_drops": "#d62728", "writer_drops": "#ff7f0e", "writer_down": "#7f7f7f",
                 "disk_error": "#9467bd", "clock_stepped": "#17becf", "maintenance": "#2ca02c"}


def _t(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC)


def _iso(ts: float) -> str:
    return format_ns(round(ts * 1e9))


def timeline(w: Window, path: Path) -> None:
    ifaces = sorted(set(w.traffic) | {g.interface for g in w.gaps})
    fig, axes = plt.subplots(4, 1, sharex=True, figsize=(12, 10), height_ratios=[3, 3, 2, 2])
    pps, bps, gaps, disk = axes
    for iface in ifaces:
        s = w.traffic.get(iface)
        if s and s.times:
            pps.plot([_t(t) for t in s.times], s.pps, label=iface, linewidth=1)
            bps.plot([_t(t) for t in s.times], [b / 1e6 for b in s.bps], label=iface, linewidth=1)
    pps.set_ylabel("packets/s")
    bps.set_ylabel("Mbit/s")
    for ax in (pps, bps):
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(loc="upper right", fontsize=8)
    for row, iface in enumerate(ifaces):
        for g in w.gaps:
            if g.interface == iface:
                gaps.broken_barh([(mdates.date2num(_t(g.start)), (g.end - g.start) / 86400)], (row - 0.4, 0.8),
                                 color=CAUSE_COLOURS.get(g.cause, "black"))
    gaps.set_yticks(range(len(ifaces)), ifaces)
    gaps.set_ylim(-0.6, max(len(ifaces), 1) - 0.4)
    gaps.set_ylabel("gap ledger")
    used = sorted({g.cause for g in w.gaps})
    if used:
        gaps.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=CAUSE_COLOURS.get(c, "black")) for c in used],
                    labels=used, loc="upper right", fontsize=8, ncols=len(used))
    if w.disk_series:
        disk.step([_t(t) for t, _ in w.disk_series], [b / 2**20 for _, b in w.disk_series], where="post")
    disk.set_ylabel("spool MiB")
    disk.grid(alpha=0.3)
    for e in w.events:
        x = _t(float(e["ts"]))
        for ax in axes:
            ax.axvline(x, color="black", alpha=0.35, linewidth=0.8, linestyle="--")
        pps.annotate(EVENTS[e["event"]], (mdates.date2num(x), 1.0), xycoords=("data", "axes fraction"),
                     rotation=60, fontsize=7, va="bottom")
    disk.set_xlim(_t(w.start), _t(w.end))
    disk.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=dt.UTC))
    disk.set_xlabel("UTC")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def bars(items: list[tuple[str, float]], title: str, xlabel: str, path: Path, colours: list[str] | None = None) -> None:
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.35 * len(items) + 1)))
    labels = [k for k, _ in items][::-1]
    ax.barh(labels or ["(none)"], [v for _, v in items][::-1] or [0], color=(colours or [None])[::-1]
            if colours else None)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def summary(w: Window) -> str:
    secs = {}
    lost = {}
    for g in w.gaps:
        secs[g.cause] = secs.get(g.cause, 0) + int(g.end - g.start)
        lost[g.cause] = lost.get(g.cause, 0) + (g.lost or 0)
    length = w.end - w.start
    ifaces = sorted(w.traffic) or sorted({f["interface"] for f in w.files})
    parts = [f"From {_iso(w.start)} to {_iso(w.end)} ({length:.0f} s), {len(ifaces)} interface(s) "
             f"({', '.join(ifaces) or 'none'}) were captured into {len(w.files)} file(s) holding "
             f"{w.packets:,} packets and {human_bytes(w.bytes)}."]
    if w.gaps:
        causes = "; ".join(f"{c}: {secs[c]} s" + (f", {lost[c]:,} packets lost" if lost[c] else "")
                           for c in sorted(secs))
        parts.append(f"{len(w.gaps)} run(s) of seconds were not whole ({causes}).")
    else:
        parts.append("Every second was whole: no drops, no writer outage, no disk error, no clock step.")
    if w.events:
        kinds: dict[str, int] = {}
        for e in w.events:
            kinds[EVENTS[e["event"]]] = kinds.get(EVENTS[e["event"]], 0) + 1
        parts.append("The journal records " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + ".")
    if w.talkers:
        parts.append(f"The top talker was {w.talkers[0][0]} ({human_bytes(w.talkers[0][1])}) and the busiest "
                     f"port {w.ports[0][0] if w.ports else 'none'}.")
    parts.append(f"The spool's filesystem is {100 * w.disk['used'] / max(w.disk['total'], 1):.0f} % full "
                 f"({human_bytes(w.disk['spool_files'])} of capture files).")
    if w.backup:
        parts.append(f"{w.backup['backed_up']} of {w.backup['files']} files are backed up.")
    return " ".join(parts)


def write(w: Window, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    timeline(w, out / "timeline.png")
    lost = {}
    for g in w.gaps:
        lost[g.cause] = lost.get(g.cause, 0) + int(g.end - g.start)
    causes = sorted(lost.items(), key=lambda kv: -kv[1])
    bars(causes, "lossy seconds by cause", "seconds", out / "causes.png",
         [CAUSE_COLOURS.get(c, "black") for c, _ in causes])
    bars([(a, b / 1e6) for a, b in w.talkers], "top talkers", "MB (both ways)", out / "talkers.png")
    bars([(p, b / 1e6) for p, b in w.ports], "top ports", "MB", out / "ports.png")
    images = ["timeline.png", "causes.png", "talkers.png", "ports.png"]
    if w.backup:
        bars([("backed up", w.backup["backed_up"]), ("not yet", w.backup["files"] - w.backup["backed_up"])],
             "backup progress", "files", out / "backup.png", ["#2ca02c", "#d62728"])
        images.append("backup.png")
    rows = "".join(
        f"<tr><td>{_iso(g.start)}</td><td>{_iso(g.end)}</td><td>{html.escape(g.interface)}</td>"
        f"<td>{g.cause}</td><td>{'?' if g.lost is None else g.lost}</td></tr>" for g in w.gaps)
    events = "".join(
        f"<tr><td>{_iso(float(e['ts']))}</td><td>{html.escape(EVENTS[e['event']])}</td>"
        f"<td>{html.escape(str(e.get('text') or e.get('interface') or e.get('source') or e.get('reason') or ''))}"
        f"</td></tr>" for e in w.events)
    alts = {"timeline.png": "traffic, gap ledger, spool fill and events over time",
            "causes.png": "lossy seconds by cause", "talkers.png": "top talkers", "ports.png": "top ports",
            "backup.png": "backup progress"}
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sluice capture report {_iso(w.start)}</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:1em auto}} img{{max-width:100%}}
table{{border-collapse:collapse;font-size:90%}} td,th{{border:1px solid #ccc;padding:2px 6px}}
.row img{{width:49%;vertical-align:top}}</style></head>
<body>
<h1>Capture report</h1>
<p id="summary">{html.escape(summary(w))}</p>
<h2>Over time</h2>
<img id="timeline" src="timeline.png" alt="{alts['timeline.png']}">
<h2>Losses, talkers, ports</h2>
<div class="row">{''.join(f'<img src="{i}" alt="{alts[i]}">' for i in images[1:])}</div>
<p>Flows: {html.escape(w.flows_source)}.</p>
<h2>The gap ledger</h2>
<table id="gaps"><tr><th>from</th><th>to</th><th>interface</th><th>cause</th><th>lost</th></tr>{rows}</table>
<h2>Events</h2>
<table id="events"><tr><th>time</th><th>event</th><th>detail</th></tr>{events}</table>
</body></html>
"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
