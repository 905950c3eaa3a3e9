"""sluice-pcap convert/merge --from/--to/--filter against editcap -A/-B and tcpdump; the growing
input; sluice-pcap index against tcpdump's own counts."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from appliance.lab.harness.tcpdump import Tcpdump
from tests.conftest import SLUICE_PCAP
from tests.pcaptool.pcapfiles import one_error_line, packets, run

pytestmark = [pytest.mark.root, pytest.mark.netns]

FILTERS = ["icmp", "icmp6 or net 198.51.100.0/28", "udp", "tcp port 80", "ip6", "tcp[tcpflags] & tcp-syn != 0", "arp"]


def _ts(ns: int) -> str:
    return f"{ns // 10**9}.{ns % 10**9:09d}"


def _peer(src, tmp, from_ns, to_ns, bpf):  # noqa: ANN001, ANN202
    cut, out = tmp / "cut.pcapng", tmp / "peer.pcap"
    subprocess.run(["editcap", "-A", _ts(from_ns), "-B", _ts(to_ns), str(src), str(cut)], check=True,
                   capture_output=True)
    subprocess.run(["tcpdump", "-r", str(cut), "-w", str(out), "--time-stamp-precision=nano", bpf], check=True,
                   capture_output=True)
    return packets(out, tmp)


@pytest.mark.parametrize("bpf", FILTERS)
def test_convert_window_and_filter_equal_editcap_and_tcpdump(captures, tmp_path, bpf):
    allp = packets(captures.span_ng, tmp_path)
    from_ns, to_ns = allp[len(allp) // 5][0], allp[4 * len(allp) // 5][0]
    out = tmp_path / "ours.pcapng"
    summary = json.loads(run("convert", "--json", "--from", _ts(from_ns), "--to", _ts(to_ns), "--filter", bpf,
                             captures.span_ng, out, check=True).stdout)
    ours = packets(out, tmp_path)
    assert ours == _peer(captures.span_ng, tmp_path, from_ns, to_ns, bpf)
    assert summary["packets_out"] == len(ours) and summary["packets_in"] == len(allp)
    assert all(from_ns <= ts < to_ns for ts, _ in ours)


def test_merge_filter_equals_mergecap_then_tcpdump(captures, tmp_path):
    inputs = [captures.span_ns, captures.host_ns]
    merged, peer = tmp_path / "m.pcap", tmp_path / "peer.pcap"
    subprocess.run(["mergecap", "-F", "nsecpcap", "-w", str(merged), *map(str, inputs)], check=True)
    subprocess.run(["tcpdump", "-r", str(merged), "-w", str(peer), "--time-stamp-precision=nano", "icmp or udp"],
                   check=True, capture_output=True)
    ours = tmp_path / "ours.pcap"
    run("merge", "--filter", "icmp or udp", "-o", ours, *inputs, check=True)
    assert ours.read_bytes() == peer.read_bytes()
    streamed = subprocess.run(["sh", "-c", f"{SLUICE_PCAP} merge --filter 'icmp or udp' -o - "
                               f"{inputs[0]} {inputs[1]} | tcpdump -r - -w - --time-stamp-precision=nano"],
                              capture_output=True, check=True)
    assert streamed.stdout == peer.read_bytes()


def test_growing_input_ends_at_its_last_whole_record(captures, tmp_path):
    whole = captures.span_ng.read_bytes()
    cut = tmp_path / "growing.pcapng"
    cut.write_bytes(whole[: len(whole) * 2 // 3] + b"\0" * 8192)  # a torn block, then unwritten space
    strict = run("merge", "-o", tmp_path / "x.pcapng", cut)
    assert strict.returncode == 1 and "damaged" in one_error_line(strict)
    out = tmp_path / "ok.pcapng"
    run("merge", "--growing", cut, "-o", out, cut, check=True)
    got = packets(out, tmp_path)
    assert 0 < len(got) and got == packets(captures.span_ng, tmp_path)[: len(got)]


@pytest.mark.parametrize("args, says", [
    (["--filter", "host and ("], "--filter 'host and ('"),
    (["--from", "2026-11-29 25:00:00"], "is not a time"),
    (["--to", "12abc"], "is not a time"),
])
def test_bad_selection_exit_2_nothing_written(captures, tmp_path, args, says):
    for cmd in (["convert", *args, captures.span_ng, tmp_path / "o.pcapng"],
                ["merge", *args, "-o", tmp_path / "o.pcapng", captures.span_ng]):
        proc = run(*cmd)
        assert proc.returncode == 2 and says in one_error_line(proc)
        assert list(tmp_path.iterdir()) == []


def test_rfc3339_bounds_equal_epoch_bounds(captures, tmp_path):
    a, b = tmp_path / "a.pcapng", tmp_path / "b.pcapng"
    allp = packets(captures.span_ng, tmp_path)
    mid = allp[len(allp) // 2][0]
    rfc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(mid // 10**9)) + f".{mid % 10**9:09d}+00:00"
    run("convert", "--from", rfc, captures.span_ng, a, check=True)
    run("convert", "--from", _ts(mid), captures.span_ng, b, check=True)
    assert packets(a, tmp_path) == packets(b, tmp_path) and packets(a, tmp_path)[0][0] == mid


def _tcpdump_count(path, bpf):  # noqa: ANN001, ANN202
    out = subprocess.run(["tcpdump", "-r", str(path), "-n", bpf], capture_output=True, text=True, check=True)
    return len(out.stdout.splitlines())


def test_index_counts_equal_tcpdump(captures):
    """Each address, (protocol, port) and protocol count is the number of packets tcpdump's
    `host A`, `PROTO port P`, `icmp`/`udp` match: the index never misses what a filter finds."""
    for src in (captures.span_ns, captures.span_ng):
        doc = json.loads(run("index", src, check=True).stdout)
        assert doc["packets"] == _tcpdump_count(src, "") and doc["addresses"] and doc["ports"]
        for addr, n in doc["addresses"].items():
            assert n == _tcpdump_count(src, f"host {addr}"), (src, addr)
        for key, n in doc["ports"].items():
            proto, port = key.split("/")
            assert n == _tcpdump_count(src, f"{proto} port {port}"), (src, key)
        assert doc["protocols"].get("1", 0) == _tcpdump_count(src, "icmp")
        assert doc["protocols"].get("17", 0) == _tcpdump_count(src, "udp")
    mixed = json.loads(run("index", captures.mixed_ng, check=True).stdout)  # Ethernet and raw IP
    assert len(mixed["interfaces"]) == 2 and mixed["addresses"]


def _in_time_order(src, tmp):  # noqa: ANN001, ANN202
    """A copy sorted by timestamp: `index --positions` writes positions only for a file in time
    order, and a live capture on a loaded machine may stamp a packet a few µs before the last."""
    out = tmp / f"sorted-{src.name}"
    subprocess.run(["reordercap", str(src), str(out)], check=True, capture_output=True)
    return out


def test_pick_then_filter_equals_filter_of_the_whole_file(captures, tmp_path):
    """The records pick reads at their positions, filtered, are exactly the whole file filtered."""
    for src in (_in_time_order(captures.span_ng, tmp_path), _in_time_order(captures.span_ns, tmp_path)):
        pos = tmp_path / f"{src.name}.pos"
        doc = json.loads(run("index", "--positions", pos, src, check=True).stdout)
        assert doc["positions"] and doc["sorted"] and pos.exists()
        keys = [("--addr", a, f"host {a}") for a in doc["addresses"]]
        keys += [("--port", k, f"{k.split('/')[0]} port {k.split('/')[1]}") for k in doc["ports"]]
        for flag, key, bpf in keys:
            picked, ours, whole = tmp_path / "picked", tmp_path / "ours", tmp_path / "whole"
            run("pick", "--positions", pos, flag, key, "-o", picked, src, check=True)
            assert picked.stat().st_size < src.stat().st_size or flag == "--addr"
            run("merge", "--filter", bpf, "-o", ours, picked, check=True)
            run("merge", "--filter", bpf, "-o", whole, src, check=True)
            assert ours.read_bytes() == whole.read_bytes(), (src.name, bpf)
            assert packets(ours, tmp_path)  # every key of the index selects something


def test_pick_refuses_positions_of_another_file(captures, tmp_path):
    pos = tmp_path / "ng.pos"
    run("index", "--positions", pos, _in_time_order(captures.span_ng, tmp_path), check=True)
    proc = run("pick", "--positions", pos, "--addr", "192.0.2.1", "-o", tmp_path / "x", captures.span_ns)
    assert proc.returncode == 2 and "do not describe it" in one_error_line(proc)
    proc = run("pick", "--positions", captures.span_ng, "--addr", "192.0.2.1", "-o", tmp_path / "x", captures.span_ng)
    assert proc.returncode == 2 and "not a positions file" in one_error_line(proc)
    assert not (tmp_path / "x").exists()


def test_pick_window_equals_filter_and_window_of_the_whole_file(captures, tmp_path):
    src, pos = _in_time_order(captures.span_ng, tmp_path), tmp_path / "ng.pos"
    doc = json.loads(run("index", "--positions", pos, src, check=True).stdout)
    allp = packets(src, tmp_path)
    for a, b in ((len(allp) // 4, len(allp) // 2), (0, len(allp) - 1), (len(allp) - 2, len(allp) - 1)):
        window = ["--from", _ts(allp[a][0]), "--to", _ts(allp[b][0])]
        for addr in doc["addresses"]:
            picked, ours, whole = tmp_path / "picked", tmp_path / "ours", tmp_path / "whole"
            run("pick", "--positions", pos, "--addr", addr, *window, "-o", picked, src, check=True)
            run("merge", "--filter", f"host {addr}", *window, "-o", ours, picked, check=True)
            run("merge", "--filter", f"host {addr}", *window, "-o", whole, src, check=True)
            assert ours.read_bytes() == whole.read_bytes(), (addr, a, b)
            got = packets(picked, tmp_path)
            assert all(allp[a][0] <= ts < allp[b][0] for ts, _ in got)  # pick itself kept to the window


def test_merge_positions_equals_merge_of_the_whole_files(captures, tmp_path):
    """merge --positions FILE=POS reads FILE only at the keys' records, in the same process (what
    `sluice extract` runs): the same packets as the merge of the whole files, with one key or
    several, with or without a window, beside an input read whole; and byte for byte what merge
    gives over pick's outputs (interfaces are described in the order their first record is read)."""
    ng, ns = _in_time_order(captures.span_ng, tmp_path), _in_time_order(captures.span_ns, tmp_path)
    pos = {src: tmp_path / f"{src.name}.pos" for src in (ng, ns)}
    docs = {src: json.loads(run("index", "--positions", pos[src], src, check=True).stdout) for src in (ng, ns)}
    allp = packets(ng, tmp_path)
    windows = [[], ["--from", _ts(allp[len(allp) // 4][0]), "--to", _ts(allp[len(allp) // 2][0])]]
    a, b = sorted(docs[ng]["addresses"])[:2]
    port = sorted(docs[ng]["ports"])[0]
    cases = [(["--addr", a], f"host {a}"), (["--addr", a, "--addr", b], f"host {a} or host {b}"),
             (["--port", port], f"{port.split('/')[0]} port {port.split('/')[1]}")]
    ours, whole, piped = tmp_path / "ours.pcapng", tmp_path / "whole.pcapng", tmp_path / "piped.pcapng"
    for keys, bpf in cases:
        for window in windows:
            for inputs, positions in (([ng], [ng]), ([ng, ns], [ng, ns]), ([ng, ns], [ns])):
                flags = [a for src in positions for a in ("--positions", f"{src}={pos[src]}")]
                proc = run("merge", "--filter", bpf, *window, *keys, *flags, "-o", ours, *inputs, check=True)
                assert "whole" not in proc.stderr, proc.stderr  # the positions were used
                run("merge", "--filter", bpf, *window, "-o", whole, *inputs, check=True)
                assert packets(ours, tmp_path) == packets(whole, tmp_path), (keys, window, inputs, positions)
                if inputs == [ng]:
                    assert ours.read_bytes() == whole.read_bytes(), (keys, window)
                picks = []
                for src in inputs:
                    if src in positions:
                        picks.append(tmp_path / f"pick-{src.name}")
                        run("pick", "--positions", pos[src], *keys, *window, "-o", picks[-1], src, check=True)
                    else:
                        picks.append(src)
                run("merge", "--filter", bpf, *window, "-o", piped, *picks, check=True)
                assert ours.read_bytes() == piped.read_bytes(), (keys, window, inputs, positions)
            assert packets(ours, tmp_path) or window  # the keys select something in the whole files


def test_merge_reads_a_file_whole_when_its_positions_do_not_describe_it(captures, tmp_path):
    ng, ns = _in_time_order(captures.span_ng, tmp_path), _in_time_order(captures.span_ns, tmp_path)
    pos = tmp_path / "ng.pos"
    doc = json.loads(run("index", "--positions", pos, ng, check=True).stdout)
    addr = sorted(doc["addresses"])[0]
    ours, whole = tmp_path / "ours.pcapng", tmp_path / "whole.pcapng"
    # positions of another file, then no positions file at all: the same result, read whole
    for stale in (pos, tmp_path / "missing.pos"):
        proc = run("merge", "--filter", f"host {addr}", "--addr", addr, "--positions", f"{ns}={stale}", "-o", ours, ns,
                   check=True)
        assert "reading it whole" in proc.stderr
        run("merge", "--filter", f"host {addr}", "-o", whole, ns, check=True)
        assert ours.read_bytes() == whole.read_bytes() and packets(ours, tmp_path)


def test_merge_positions_reads_jumbo_records_whole(veth_ns, tmp_path):
    """Records longer than picked.c's first read (2 KiB), as a SPAN port with jumbo frames gives
    them: each is read whole (the rest in a second read), pcap and pcapng alike."""
    raw = tmp_path / "lo.pcap"
    with Tcpdump(veth_ns.ns, "lo", raw, ("-n", "--immediate-mode", "-U", "--time-stamp-precision=nano")):
        for size in (100, 4000, 9000, 1400, 60000):
            veth_ns.run(["ping", "-c", "2", "-i", "0.01", "-s", str(size), "127.0.0.1"])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(packets(raw, tmp_path)) < 20:  # requests and replies
            time.sleep(0.05)
    ng = tmp_path / "lo.pcapng"
    run("convert", "--format", "pcapng", raw, ng, check=True)
    for src in (_in_time_order(raw, tmp_path), _in_time_order(ng, tmp_path)):
        pos = tmp_path / f"{src.name}.pos"
        assert json.loads(run("index", "--positions", pos, src, check=True).stdout)["positions"]
        assert max(len(data) for _, data in packets(src, tmp_path)) > 9000
        ours, whole = tmp_path / "ours", tmp_path / "whole"
        proc = run("merge", "--filter", "host 127.0.0.1", "--addr", "127.0.0.1", "--positions", f"{src}={pos}", "-o",
                   ours, src, check=True)
        assert "whole" not in proc.stderr
        run("merge", "--filter", "host 127.0.0.1", "-o", whole, src, check=True)
        assert ours.read_bytes() == whole.read_bytes() and len(packets(ours, tmp_path)) >= 20


@pytest.mark.parametrize("args, says", [
    (["--addr", "192.0.2.1", "--positions", "/nonexistent.pcap=/x.pos"], "not an input"),
    (["--positions", "IN=/x.pos"], "needs the keys"),
    (["--addr", "192.0.2.999"], "not an IPv4 or IPv6 address"),
    (["--port", "icmp/7"], "not tcp/N"),
    (["--positions", "nothing-to-split"], "FILE=POSITIONS"),
])
def test_merge_positions_bad_usage_exit_2(captures, tmp_path, args, says):
    out = tmp_path / "x.pcapng"
    args = [str(captures.span_ns) + a[2:] if a.startswith("IN=") else a for a in args]
    proc = run("merge", *args, "-o", out, captures.span_ns)
    assert proc.returncode == 2 and says in one_error_line(proc) and not out.exists()
