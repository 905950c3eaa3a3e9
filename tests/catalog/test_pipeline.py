"""sluice pipeline run --once (issue 15, first steps): backup to every target verified by sha256,
then check; idempotent; a target that fills up leaves the file not backed up and nothing half;
the results survive a catalog rebuild (from the journal)."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from appliance.journal import read_events
from appliance.lab.harness.mounts import remount, tmpfs
from tests.catalog.conftest import SLUICE_PCAP, Spool, kill_9_at, rows, sluice
from tests.conftest import REPO, require_tool

pytestmark = [pytest.mark.root, pytest.mark.netns]


def _config(tmp: Path, spool: Path, targets: list[Path]) -> Path:
    cfg = tmp / "sluice.toml"
    cfg.write_text(f'[capture]\ninterfaces = ["rx0"]\nspool = "{spool}"\nhost = "lab"\n'
                   f'[pipeline]\nbackup = [{", ".join(json.dumps(str(t)) for t in targets)}]\n')
    return cfg


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_backup_then_check_once_and_only_once(spool: Spool, tmp_path: Path) -> None:
    copy = tmp_path / "spool"
    shutil.copytree(spool.dir, copy, symlinks=True)
    a, b = tmp_path / "backup-a", tmp_path / "backup-b"
    a.mkdir()
    b.mkdir()
    cfg = _config(tmp_path, copy, [a, b])
    proc = sluice("pipeline", "run", "--once", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr.decode()
    files = [r["path"] for r in rows(copy)]
    for rel in files:
        for target in (a, b):
            assert _sha(target / rel) == _sha(copy / rel)
    assert not [p for p in a.rglob(".*sluice-tmp")] and not [p for p in b.rglob(".*sluice-tmp")]
    after = rows(copy)
    assert {r["state"] for r in after} == {"checked"}
    assert all(r["steps"]["backup"]["sha256"] == _sha(copy / r["path"]) for r in after)
    mtimes = {p: p.stat().st_mtime_ns for p in a.rglob("*.pcapng")}
    proc = sluice("pipeline", "run", "--once", "--config", str(cfg))
    assert proc.returncode == 0 and b"backup 0 done" in proc.stdout and b"check 0 done" in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in a.rglob("*.pcapng")} == mtimes  # nothing written again
    # the results survive a lost catalog: rebuild takes them from the journal
    for suffix in ("", "-wal", "-shm"):
        (copy / f"catalog.sqlite{suffix}").unlink(missing_ok=True)
    assert sluice("catalog", "rebuild", "--spool", str(copy)).returncode == 0
    assert rows(copy) == after
    assert len(list(read_events(copy / "journal.jsonl", "pipeline_step"))) == 2 * len(files)


def test_a_target_that_fills_up_is_retried_and_leaves_nothing_half(spool: Spool, tmp_path: Path) -> None:
    copy = tmp_path / "spool"
    shutil.copytree(spool.dir, copy, symlinks=True)
    big = max(copy.rglob("*.pcapng"), key=lambda p: p.stat().st_size)
    small, ok = tmp_path / "small", tmp_path / "ok"
    ok.mkdir()
    with tmpfs(small, f"{max(big.stat().st_size // 2, 4096)}"):
        cfg = _config(tmp_path, copy, [ok, small])
        proc = sluice("pipeline", "run", "--once", "--config", str(cfg))
        assert proc.returncode == 1, proc.stderr.decode()
        rel = str(big.relative_to(copy))
        row = next(r for r in rows(copy) if r["path"] == rel)
        assert row["state"] == "closed" and not row["steps"]["backup"]["ok"]
        assert "No space left" in row["steps"]["backup"]["error"] and "check" not in row["steps"]
        assert not (small / rel).exists() and not list(small.rglob(".*sluice-tmp"))
        remount(small, "size=64M")
        proc = sluice("pipeline", "run", "--once", "--config", str(cfg))
        assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
        assert _sha(small / rel) == _sha(big) and {r["state"] for r in rows(copy)} == {"checked"}


def test_pipeline_refuses_a_missing_target(spool: Spool, tmp_path: Path) -> None:
    cfg = _config(tmp_path, spool.dir, [tmp_path / "nowhere"])
    proc = sluice("pipeline", "run", "--once", "--config", str(cfg))
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "no such directory" in err and len(err.strip().splitlines()) == 1


def _count(p: Path) -> int:
    out = subprocess.run(["tcpdump", "-r", str(p), "-n"], capture_output=True, text=True)
    return len(out.stdout.splitlines())


def test_damaged_file_repaired_span_copies_removed(spool: Spool, tmp_path: Path) -> None:
    """A damaged file (cut inside a record) is repaired into a copy, the original kept as it is;
    a file with every packet twice (what a SPAN port sends) loses its copies; both processed."""
    copy = tmp_path / "spool"
    shutil.copytree(spool.dir, copy, symlinks=True)
    files = sorted((p for p in copy.rglob("*.pcapng")), key=lambda p: p.stat().st_size)
    damaged, doubled = files[-1], files[-2]
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) * 2 // 3 + 7])
    twice = tmp_path / "twice.pcapng"
    subprocess.run([str(SLUICE_PCAP), "merge", "-o", str(twice), str(doubled), str(doubled)], check=True,
                   capture_output=True)
    original_count = _count(doubled)
    shutil.copyfile(twice, doubled)
    assert sluice("catalog", "rebuild", "--spool", str(copy)).returncode == 0
    backup, processed = tmp_path / "backup", tmp_path / "processed"
    backup.mkdir()
    cfg = _config(tmp_path, copy, [backup])
    cfg.write_text(cfg.read_text() + f'processed = "{processed}"\n')
    damaged_bytes = damaged.read_bytes()
    proc = sluice("pipeline", "run", "--once", "--config", str(cfg))
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    by_path = {r["path"]: r for r in rows(copy)}
    rel_d, rel_t = str(damaged.relative_to(copy)), str(doubled.relative_to(copy))
    d = by_path[rel_d]["steps"]
    assert not d["check"]["valid"] and d["repair"]["needed"] and d["repair"]["packets_out"] > 0
    assert damaged.read_bytes() == damaged_bytes  # the original stays as it was
    repaired = processed / "repaired" / rel_d
    assert subprocess.run([str(SLUICE_PCAP), "check", str(repaired)], capture_output=True).returncode == 0
    assert _count(processed / rel_d) == d["dedup"]["packets_out"] > 0
    t = by_path[rel_t]["steps"]
    assert t["check"]["valid"] and not t["repair"]["needed"]
    assert t["dedup"]["packets_in"] == 2 * original_count and t["dedup"]["packets_out"] == original_count
    assert {r["state"] for r in by_path.values()} == {"flows"}
    again = sluice("pipeline", "run", "--once", "--config", str(cfg))
    assert again.returncode == 0 and b"dedup 0 done" in again.stdout and b"repair 0 done" in again.stdout


def _outputs(*dirs: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): _sha(p) for d in dirs for p in d.rglob("*") if p.is_file()}


def test_kill_9_at_any_moment_then_resume_gives_the_same_result(spool: Spool, tmp_path: Path) -> None:
    def setup(name: str) -> tuple[Path, Path, Path, Path]:
        base = tmp_path / name
        copy = base / "spool"
        shutil.copytree(spool.dir, copy, symlinks=True)
        backup, processed = base / "backup", base / "processed"
        backup.mkdir()
        cfg = _config(base, copy, [backup])
        cfg.write_text(cfg.read_text() + f'processed = "{processed}"\n')
        return copy, backup, processed, cfg

    ref_spool, ref_backup, ref_processed, ref_cfg = setup("ref")
    assert sluice("pipeline", "run", "--once", "--config", str(ref_cfg)).returncode == 0
    copy, backup, processed, cfg = setup("killed")
    kills = kill_9_at((0.35, 0.5, 0.65, 0.8, 0.95, 1.1), "pipeline", "run", "--once", "--config", str(cfg))
    assert kills >= 1
    done = sluice("pipeline", "run", "--once", "--config", str(cfg))
    assert done.returncode == 0, done.stderr.decode()
    assert _outputs(backup, processed) == _outputs(ref_backup, ref_processed)  # no temporary, same bytes
    assert [(r["path"], r["state"]) for r in rows(copy)] == [(r["path"], r["state"]) for r in rows(ref_spool)]


def _pcap_flow_totals(files: list[Path], tmp: Path) -> tuple[int, int, int]:
    """flows, packets and bytes (both directions) as `sluice-pcap flows` of each file counts them."""
    fields = []
    for k, f in enumerate(files):
        out = tmp / f"reference-{k}.csv"
        subprocess.run([str(SLUICE_PCAP), "flows", "--format", "csv", "-o", str(out), str(f)], check=True,
                       capture_output=True)
        fields += [line.split(",") for line in out.read_text().splitlines()[1:]]
    return len(fields), sum(int(f[8]) + int(f[10]) for f in fields), sum(int(f[9]) + int(f[11]) for f in fields)


def test_flows_step_writes_hive_parquet_and_ipfix_that_nfcapd_accepts(spool: Spool, tmp_path: Path) -> None:
    """Every processed copy becomes Parquet flows under PROCESSED/flows/host=lab/date=D/, with the
    same totals as `sluice-pcap flows` of the processed copies, ns integers and timestamps agreeing;
    the same flows go to a real nfcapd over UDP on loopback, which stores them."""
    import pyarrow.dataset as ds

    copy = tmp_path / "spool"
    shutil.copytree(spool.dir, copy, symlinks=True)
    backup, processed, nfdir = tmp_path / "backup", tmp_path / "processed", tmp_path / "nfcapd"
    backup.mkdir()
    nfdir.mkdir()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _config(tmp_path, copy, [backup])
    cfg.write_text(cfg.read_text() + f'processed = "{processed}"\nipfix_collector = "127.0.0.1:{port}"\n')
    collector = subprocess.Popen(["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", str(nfdir), "-t", "3600"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and f":{port:04X} ".encode() not in Path("/proc/net/udp").read_bytes():
            time.sleep(0.05)
        proc = sluice("pipeline", "run", "--once", "--config", str(cfg))
        assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    finally:
        collector.terminate()  # nfcapd writes its current file out on SIGTERM
        collector.wait(timeout=20)
    by_path = {r["path"]: r for r in rows(copy)}
    assert {r["state"] for r in by_path.values()} == {"flows"}
    parquet = sorted((processed / "flows").rglob("*.parquet"))
    assert parquet and all(p.parent.parent.name == "host=lab" and p.parent.name.startswith("date=")
                           for p in parquet)
    table = ds.dataset(str(processed / "flows"), format="parquet", partitioning="hive").to_table()
    assert str(table.schema.field("first_ts").type) == "timestamp[us, tz=UTC]"
    micros = [t // 1000 for t in table.column("first_ns").to_pylist()]
    assert table.column("first_ts").cast("int64").to_pylist() == micros
    assert {str(h) for h in table.column("host").to_pylist()} == {"lab"}
    processed_copies = [processed / rel for rel in by_path]
    n, packets, octets = _pcap_flow_totals(processed_copies, tmp_path)
    assert n == table.num_rows > 0
    assert packets == sum(table.column("packets").to_pylist()) + sum(table.column("rev_packets").to_pylist())
    assert octets == sum(table.column("bytes").to_pylist()) + sum(table.column("rev_bytes").to_pylist())
    assert sum(r["steps"]["flows"]["flows"] for r in by_path.values()) == n
    assert all(r["steps"]["flows"]["ipfix_messages"] > 0 for r in by_path.values() if r["steps"]["flows"]["flows"])
    stored = [p for p in nfdir.rglob("nfcapd.*") if p.is_file()]
    dump = subprocess.run(["nfdump", "-R", str(nfdir), "-o", "csv", "-q"], capture_output=True, text=True)
    assert stored and dump.returncode == 0, dump.stderr
    records = [line for line in dump.stdout.splitlines() if line and line[0].isdigit()]
    assert len(records) >= n  # nfdump splits a bidirectional record into its two directions at most
    again = sluice("pipeline", "run", "--once", "--config", str(cfg))
    assert again.returncode == 0 and b"flows 0 done" in again.stdout
    # the same totals from DuckDB over the dataset: `sluice flows query`
    proc = sluice("flows", "query", "--config", str(cfg),
                  "SELECT count(*), sum(packets + rev_packets), sum(bytes + rev_bytes), count(DISTINCT host) "
                  "FROM flows")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().splitlines()[1] == f"{n},{packets},{octets},1"
    bad = sluice("flows", "query", "--config", str(cfg), "SELEC nonsense")
    assert bad.returncode == 2 and len(bad.stderr.decode().strip().splitlines()) == 1


def test_retention_never_deletes_a_file_not_backed_up(spool: Spool, tmp_path: Path) -> None:
    """A backup target too small for all: the files whose backup failed survive retention under a
    floor it cannot reach, which deletes every backed-up file and says how much waits for backup;
    once their backup succeeds, retention may delete them too."""
    from appliance import retention
    from appliance.config import FreeFloor
    from appliance.journal import Journal
    from appliance.metrics import appliance_families
    from appliance.snapshot import RetentionSnapshot, Snapshot
    from appliance.watchdogs.disk import capture_files

    mnt, small = tmp_path / "fs", tmp_path / "small"
    mnt.mkdir()
    with tmpfs(mnt, "256M"), ExitStack() as mounted:
        copy = mnt / "spool"
        shutil.copytree(spool.dir, copy, symlinks=True)
        files = list(copy.rglob("*.pcapng"))
        big = max(files, key=lambda p: p.stat().st_size)
        pages = [-(-p.stat().st_size // 4096) for p in files if p != big]
        room = (sum(pages) + -(-big.stat().st_size // 4096) // 2) * 4096  # not room for all
        mounted.enter_context(tmpfs(small, f"{room}"))
        cfg = _config(tmp_path, copy, [small])
        assert sluice("pipeline", "run", "--once", "--config", str(cfg)).returncode == 1
        unsaved = {r["path"] for r in rows(copy) if not r["steps"]["backup"]["ok"]}
        assert unsaved and len(unsaved) < len(files)
        unsaved_bytes = sum((copy / rel).stat().st_size for rel in unsaved)
        def floor_keeping(keep: int) -> FreeFloor:
            """A floor reached only when all but `keep` bytes of the captures are gone (a floor no
            deletion can reach would say the spool is full of other files: retention blocked)."""
            free = retention.statvfs(copy)[0]
            deletable = [f.size for f in capture_files(copy) if f.path not in newest]
            return FreeFloor(nbytes=free + sum(deletable) - keep)

        # The newest file of each writer is never deleted (retention's rule since the flood tests).
        newest = retention.newest_per_writer(capture_files(copy))
        kept = unsaved | {str(p.relative_to(copy)) for p in newest}

        with Journal(copy / "journal.jsonl") as j:
            result = retention.enforce(copy, floor_keeping(unsaved_bytes // 2), FreeFloor(nbytes=0), j,
                                       require_backup=True)
        assert not result.blocked
        assert {r["path"] for r in rows(copy)} == kept and all((copy / rel).exists() for rel in kept)
        assert len(result.deleted) == len(files) - len(kept)
        assert result.waiting_for_backup_files == len(unsaved) and result.waiting_for_backup_bytes == unsaved_bytes
        waiting = list(read_events(copy / "journal.jsonl", "retention_waiting_for_backup"))
        assert waiting and waiting[-1]["bytes"] == unsaved_bytes
        families = {f.name: f for f in appliance_families(Snapshot(
            version="t", retention=RetentionSnapshot(waiting_for_backup_bytes=result.waiting_for_backup_bytes)))}
        assert families["sluice_retention_waiting_for_backup_bytes"].samples[0].value == unsaved_bytes
        remount(small, "size=64M")
        assert sluice("pipeline", "run", "--once", "--config", str(cfg)).returncode == 0
        smallest = min(f.size for f in capture_files(copy) if f.path not in newest)
        with Journal(copy / "journal.jsonl") as j:
            result = retention.enforce(copy, floor_keeping(smallest // 2), FreeFloor(nbytes=0), j,
                                       require_backup=True)
        assert set(copy.rglob("*.pcapng")) == newest and result.waiting_for_backup_bytes == 0


def _original_addresses(files: list[Path]) -> set[str]:
    """Every IP address in the packets of FILES (IP headers, both versions, and ARP), per tshark."""
    merged = subprocess.run([str(SLUICE_PCAP), "merge", "-o", "-", *map(str, files)], capture_output=True,
                            check=True).stdout
    out = subprocess.run(["tshark", "-n", "-T", "fields", "-E", "separator=,", "-e", "ip.addr", "-e", "ipv6.addr",
                          "-e", "arp.src.proto_ipv4", "-e", "arp.dst.proto_ipv4", "-r", "-"],
                         input=merged, capture_output=True, check=True).stdout.decode()
    return {a for line in out.splitlines() for a in line.split(",") if a}


def test_publish_set_has_no_original_address_and_a_manifest(spool: Spool, tmp_path: Path) -> None:
    """Publish: anonymised, header-only copies and their flows, a manifest with every file's
    sha256 and the key id; no original address anywhere in the bytes of the set, nor the key."""
    import ipaddress

    copy = tmp_path / "spool"
    shutil.copytree(spool.dir, copy, symlinks=True)
    backup, processed, publish = tmp_path / "backup", tmp_path / "processed", tmp_path / "publish"
    backup.mkdir()
    key = tmp_path / "cryptopan.key"
    key_hex = hashlib.sha256(b"sluice publish test").hexdigest()
    key.write_text(key_hex + "\n")
    key.chmod(0o600)
    cfg = _config(tmp_path, copy, [backup])
    cfg.write_text(cfg.read_text() + f'processed = "{processed}"\npublish = "{publish}"\nkey_file = "{key}"\n')
    proc = sluice("pipeline", "run", "--once", "--config", str(cfg))
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    by_path = {r["path"]: r for r in rows(copy)}
    assert {r["state"] for r in by_path.values()} == {"published"}
    manifest = json.loads((publish / "MANIFEST.json").read_text())
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    on_disk = {str(p.relative_to(publish)): _sha(p) for p in publish.rglob("*") if p.is_file()
               and p.name != "MANIFEST.json"}
    assert listed == on_disk and set(by_path) <= set(listed)
    assert any(p.startswith("flows/host=lab/date=") and p.endswith(".parquet") for p in listed)
    assert manifest["key_id"].startswith("sha256:") and len(manifest["key_id"]) == 7 + 16
    originals = _original_addresses([copy / rel for rel in by_path])
    assert {"192.0.2.1", "198.51.100.2", "2001:db8::1"} <= originals
    needles = [key_hex.encode(), bytes.fromhex(key_hex)]
    for a in originals:
        ip = ipaddress.ip_address(a)
        if ip.is_unspecified:  # :: (IPv6 DAD) names nobody, and 16 zero bytes occur anywhere
            continue
        needles += [ip.packed, str(ip).encode(), ip.exploded.encode()]
    for p in publish.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            found = [n for n in needles if n in data]
            assert not found, f"{p.relative_to(publish)} holds {found[:3]}"
    published = [publish / rel for rel in by_path]
    assert all(subprocess.run([str(SLUICE_PCAP), "check", str(p)], capture_output=True).returncode == 0
               for p in published)
    assert len(_original_addresses(published)) >= len(originals) // 2  # addresses still there, anonymised
    again = sluice("pipeline", "run", "--once", "--config", str(cfg))
    assert again.returncode == 0 and b"publish 0 done" in again.stdout


@pytest.mark.slow
def test_pyspark_reads_the_same_totals_as_duckdb_and_sluice_pcap(spool: Spool, tmp_path: Path) -> None:
    """The pipeline's Parquet flows read unchanged by Spark (PySpark, local mode, Java 17): the
    same flow count, packets, bytes and time span as DuckDB (`sluice flows query`) and as
    `sluice-pcap flows` of the processed copies; the host and date partitions come from the path."""
    pyspark_sql = pytest.importorskip("pyspark.sql", reason="pyspark (pinned in the dev extras)")
    require_tool("java")
    copy = tmp_path / "spool"
    shutil.copytree(spool.dir, copy, symlinks=True)
    backup, processed = tmp_path / "backup", tmp_path / "processed"
    backup.mkdir()
    cfg = _config(tmp_path, copy, [backup])
    cfg.write_text(cfg.read_text() + f'processed = "{processed}"\n')
    assert sluice("pipeline", "run", "--once", "--config", str(cfg)).returncode == 0
    n, packets, octets = _pcap_flow_totals([processed / r["path"] for r in rows(copy)], tmp_path)
    sql = ("SELECT count(*) AS n, sum(packets + rev_packets) AS p, sum(bytes + rev_bytes) AS b, "
           "min(first_ns) AS f, max(last_ns) AS l, count(DISTINCT host) AS h FROM flows")
    duck = sluice("flows", "query", "--config", str(cfg), sql)
    assert duck.returncode == 0, duck.stderr.decode()
    duck_row = [int(v) for v in duck.stdout.decode().splitlines()[1].split(",")]
    spark = (pyspark_sql.SparkSession.builder.master("local[1]").appName("sluice-flows-test")
             .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC").getOrCreate())
    try:
        spark.read.parquet(str(processed / "flows")).createOrReplaceTempView("flows")
        spark_row = [int(v) for v in spark.sql(sql).collect()[0]]
        micros = spark.sql("SELECT count(*) FROM flows WHERE unix_micros(first_ts) != first_ns DIV 1000").collect()
    finally:
        spark.stop()
    assert spark_row == duck_row
    assert spark_row[:3] == [n, packets, octets] and n > 0 and spark_row[5] == 1
    assert micros[0][0] == 0  # the timestamp column is the integer ns, to the microsecond


def test_the_service_takes_new_files_as_they_come_and_stops_on_sigterm(spool: Spool, tmp_path: Path) -> None:
    """`sluice pipeline run` without --once (what sluice-pipeline.service runs): passes every
    `interval`, so a file that reaches the catalog later is backed up too; SIGTERM ends it cleanly."""
    import signal

    copy = tmp_path / "spool"
    shutil.copytree(spool.dir, copy, symlinks=True)
    late = sorted(copy.joinpath("lab").rglob("*.pcapng"))[-1]
    held_back = tmp_path / late.name
    shutil.move(late, held_back)  # not in the spool yet when the service starts
    assert sluice("catalog", "rebuild", "--spool", str(copy)).returncode == 0
    target = tmp_path / "backup"
    target.mkdir()
    cfg = _config(tmp_path, copy, [target])
    cfg.write_text(cfg.read_text() + "interval = 1\n")
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "pipeline", "run", "--config", str(cfg)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def all_checked(n: int) -> bool:
            found = rows(copy)
            return len(found) == n and {r["state"] for r in found} == {"checked"}

        n = len(rows(copy))
        deadline = time.monotonic() + 60
        while not all_checked(n) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert all_checked(n), rows(copy)
        shutil.move(held_back, late)  # the file closes now: the catalog gets it, the next pass backs it up
        assert sluice("catalog", "rebuild", "--spool", str(copy)).returncode == 0
        deadline = time.monotonic() + 60
        while not all_checked(n + 1) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert all_checked(n + 1), rows(copy)
        assert _sha(target / late.relative_to(copy)) == _sha(late)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert b"pipeline: stopped" in err


def test_once_on_a_terminal_draws_a_progress_bar(spool: Spool, tmp_path: Path) -> None:
    """On a terminal `run --once` redraws one line per file and step; into a pipe it prints none."""
    import os
    import pty

    copy = tmp_path / "spool"
    shutil.copytree(spool.dir, copy, symlinks=True)
    target = tmp_path / "backup"
    target.mkdir()
    cfg = _config(tmp_path, copy, [target])
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "pipeline", "run", "--once",
                                 "--config", str(cfg)], cwd=REPO, stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the program closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        out, _ = proc.communicate(timeout=120)
    finally:
        os.close(master)
    assert proc.returncode == 0, drawn.decode(errors="replace")
    n = len(rows(copy))
    frames = drawn.decode().split("\r\x1b[K")[1:]
    assert len(frames) >= 2 * n, drawn  # a redraw per file and step (backup, check), then the end
    assert any(" backup " in f for f in frames) and any(" check " in f for f in frames)
    steps = 2 * n  # backup and check for each file: this config has no processed or publish steps
    assert frames[-1].strip() == f"[{'#' * 30}] {steps}/{steps} steps done"
    assert b"\x1b[K" not in out and b"pipeline: " in out
    # without a terminal: no bar at all
    again = sluice("pipeline", "run", "--once", "--config", str(cfg))
    assert again.returncode == 0 and b"\x1b[K" not in again.stderr
