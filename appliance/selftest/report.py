"""The self-test's result: the verdict against each capture link, the table, the JSON document
kept in SPOOL/selftest.json, and the `sluice_selftest_*` metric families the supervisor
exports from that file (monitoring/METRICS.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

RESULT_NAME = "selftest.json"
RESULT_VERSION = 1


def result_path(spool: Path) -> Path:
    return spool / RESULT_NAME


def human_bits(bps: float) -> str:
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.1f} {unit}"
    return f"{bps:.0f} bit/s"


def human_pps(pps: float) -> str:
    if pps >= 1e6:
        return f"{pps / 1e6:.2f} Mpps"
    if pps >= 1e3:
        return f"{pps / 1e3:.1f} kpps"
    return f"{pps:.0f} pps"


def verdicts(ceilings: list[dict[str, Any]], links: dict[str, int]) -> list[dict[str, Any]]:
    """Each capture link against the best lossless rate in bit/s over the frame sizes tested
    (the largest frames carry the most bits): the box keeps up when that reaches the link speed."""
    best = max(ceilings, key=lambda c: c["lossless_bits_per_second"]) if ceilings else None
    out = []
    for ifname, speed in links.items():
        ceiling = best["lossless_bits_per_second"] if best else 0
        keeps_up = speed > 0 and ceiling >= speed
        if speed <= 0:
            text = f"{ifname}: link speed unknown (pass --link-speed): cannot judge"
        else:
            size = best["frame_bytes"] if best else 0
            text = (f"{ifname} is {human_bits(speed)}; at {size} B this box keeps {human_bits(ceiling)} without loss"
                    + (" (the generator's limit: the box may keep more)" if best and best["generator_limited"] else "")
                    + (": it keeps up" if keeps_up else ": at full load it will drop"))
        out.append({"interface": ifname, "link_bits_per_second": speed, "ceiling_bits_per_second": ceiling,
                    "keeps_up": keeps_up, "text": text})
    return out


def format_table(result: dict[str, Any]) -> str:
    lines = [f"sluice selftest on {result['host']}: config {result['config']}, {result['capture']}",
             "",
             f"{'frame':>6} {'lossless':>11} {'line rate':>11} {'first loss':>11} {'CPU/packet':>11}  limit",
             ]
    for c in result["ceilings"]:
        first = c["first_loss_packets_per_second"]
        cpu = c["cpu_ns_per_packet"]
        limit = c["limit"] + (" (no loss at the generator's top speed)" if c["generator_limited"] else "")
        lines.append(f"{c['frame_bytes']:>5}B {human_pps(c['lossless_packets_per_second']):>11} "
                     f"{human_bits(c['lossless_bits_per_second']):>11} "
                     f"{human_pps(first) if first is not None else '-':>11} "
                     f"{f'{cpu:.0f} ns' if cpu is not None else '-':>11}  {limit}")
    d = result["disk"]
    lines += ["",
              f"spool {result['spool']}: sustained write {human_bits(d['bytes_per_second'] * 8)} "
              f"({d['bytes_per_second'] / 1e6:.0f} MB/s, {'O_DIRECT' if d['direct'] else 'buffered: no O_DIRECT here'}"
              f", {d['bytes_written'] / 2**20:.0f} MiB in {d['seconds']:.1f} s)"]
    r = result["retention"]
    if r["hours_at_link_rate"] is not None:
        lines.append(f"retention: {r['usable_bytes'] / 2**30:.1f} GiB above the free-space floor hold "
                     f"{r['hours_at_link_rate']:.2f} hours at the links' full rate "
                     f"({human_bits(r['link_bits_per_second'])})")
    lines.append("")
    lines += [v["text"] for v in result["verdicts"]]
    if result.get("forced"):
        lines.append("(run with --force beside a live capture: both shared the CPUs and the disk)")
    return "\n".join(lines)


def write_result(spool: Path, result: dict[str, Any]) -> Path:
    """SPOOL/selftest.json, replaced atomically: the supervisor exports it as metrics."""
    path = result_path(spool)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, path)
    return path


def load_result(spool: Path) -> dict[str, Any] | None:
    """The last self-test's result, or None (none yet, or unreadable: metrics must not fail)."""
    try:
        doc = json.loads(result_path(spool).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("version") == RESULT_VERSION else None


def metric_families(result: dict[str, Any] | None) -> list[Metric]:
    """The families, always (scrapers see them declared); samples only once a self-test ran."""
    ts = GaugeMetricFamily("sluice_selftest_timestamp_seconds", "when the last self-test finished (unix time)")
    pps = GaugeMetricFamily("sluice_selftest_lossless_packets_per_second",
                            "highest rate captured without loss, per frame size", labels=["frame_bytes"])
    bits = GaugeMetricFamily("sluice_selftest_lossless_bits_per_second",
                             "that rate as link load (frame + 20 B preamble and gap), per frame size",
                             labels=["frame_bytes"])
    gen = GaugeMetricFamily("sluice_selftest_generator_limited",
                            "1 when nothing was lost even at the generator's top speed (the ceiling is a floor)",
                            labels=["frame_bytes"])
    cpu = GaugeMetricFamily("sluice_selftest_cpu_seconds_per_packet",
                            "capture CPU time per packet at the lossless ceiling", labels=["frame_bytes"])
    disk = GaugeMetricFamily("sluice_selftest_disk_write_bytes_per_second",
                             "sustained write rate of the spool (O_DIRECT, 4 MiB blocks)")
    link = GaugeMetricFamily("sluice_selftest_link_bits_per_second", "link speed the self-test judged against",
                             labels=["interface"])
    keeps = GaugeMetricFamily("sluice_selftest_keeps_up", "1 when the lossless ceiling reaches the link speed",
                              labels=["interface"])
    ret = GaugeMetricFamily("sluice_selftest_retention_seconds_at_link_rate",
                            "how long the spool above its floor holds the links' full rate")
    fams: list[Metric] = [ts, pps, bits, gen, cpu, disk, link, keeps, ret]
    if not result:
        return fams
    ts.add_metric([], float(result["ts"]))
    for c in result["ceilings"]:
        size = [str(c["frame_bytes"])]
        pps.add_metric(size, float(c["lossless_packets_per_second"]))
        bits.add_metric(size, float(c["lossless_bits_per_second"]))
        gen.add_metric(size, 1.0 if c["generator_limited"] else 0.0)
        if c["cpu_ns_per_packet"] is not None:
            cpu.add_metric(size, float(c["cpu_ns_per_packet"]) / 1e9)
    disk.add_metric([], float(result["disk"]["bytes_per_second"]))
    for v in result["verdicts"]:
        link.add_metric([v["interface"]], float(v["link_bits_per_second"]))
        keeps.add_metric([v["interface"]], 1.0 if v["keeps_up"] else 0.0)
    hours = result["retention"]["hours_at_link_rate"]
    if hours is not None:
        ret.add_metric([], float(hours) * 3600)
    return fams
