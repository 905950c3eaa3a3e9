"""One contract between Python and C (issue 13): `sluice-capture --print-contract` states the
flags' ranges and grammars, the stats fields and the file names once; the config validation in
appliance/config.py, the supervisor's reading of the stats channel and the recorded fixtures
are checked against it here, so the two sides cannot drift apart again."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from appliance import config, writer
from appliance.watchdogs import disk as disk_wd

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sluice-capture" / "channel.jsonl"


@pytest.fixture(scope="module")
def contract(capture_binary: Path) -> dict[str, Any]:
    return json.loads(subprocess.run([str(capture_binary), "--print-contract"], capture_output=True, text=True,
                                     check=True).stdout)


def accepts(section: str, key: str, value: Any) -> bool:
    try:
        config.SCHEMA[section][key].check(value)
    except (ValueError, TypeError):
        return False
    return True


def writer_accepts(binary: Path, *flag: str) -> bool:
    """Does sluice-capture take the flag? (--print-contract after it: no capture is started)"""
    rc = subprocess.run([str(binary), *flag, "--print-contract"], capture_output=True, timeout=30).returncode
    assert rc in (0, 2)
    return rc == 0


@pytest.mark.parametrize("key,flag", [("snaplen", "snaplen"), ("workers", "workers"), ("ring_mb", "ring_mb"),
                                      ("buffer_mb", "buffer_mb")])
def test_integer_ranges_are_the_writers(contract, key: str, flag: str) -> None:
    spec = contract["flags"][flag]
    lo, hi = spec["min"], spec["max"]
    assert accepts("capture", key, lo) and accepts("capture", key, hi)
    assert not accepts("capture", key, lo - 1) and not accepts("capture", key, hi + 1)
    if spec.get("default") == "auto":
        assert accepts("capture", key, "auto") and config.SCHEMA["capture"][key].default == "auto"


def test_stats_interval_range_is_the_writers(contract) -> None:
    spec = contract["flags"]["stats_interval"]
    assert accepts("supervisor", "stats_interval", spec["min"]) and accepts("supervisor", "stats_interval", spec["max"])
    assert not accepts("supervisor", "stats_interval", spec["min"] * 0.99)
    assert not accepts("supervisor", "stats_interval", spec["max"] * 1.01)


def test_rotate_sizes_mean_the_same_on_both_sides(contract, capture_binary: Path) -> None:
    spec = contract["flags"]["rotate_size"]
    grammar = re.compile(spec["grammar"], re.IGNORECASE if spec["grammar_flags"] == "ignorecase" else 0)
    assert grammar.pattern == config.SIZE_RE.pattern and grammar.flags == config.SIZE_RE.flags
    assert accepts("capture", "rotate_size", spec["min"]) and accepts("capture", "rotate_size", spec["max"])
    assert not accepts("capture", "rotate_size", spec["min"] - 1)
    assert not accepts("capture", "rotate_size", spec["max"] + 1)
    for text in ["1G", "1.5G", "512 MiB", "64kb", "4096", "4T", "5T", "1Gi", "12Q", "1.G", "-1M", "3K",
                 "99999999T", " 2M "]:
        assert accepts("capture", "rotate_size", text) == writer_accepts(capture_binary, "--rotate-size", text), text


def test_host_names_mean_the_same_on_both_sides(contract, capture_binary: Path) -> None:
    assert contract["flags"]["host"]["grammar"] == "^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$"
    for name in ["box1", "a.b-c", ".x", "..", "-x", "a_b", "x" * 63, "x" * 64, "a/b", "lab\n"]:
        assert accepts("capture", "host", name) == writer_accepts(capture_binary, "--host", name), repr(name)


def test_choices_and_levels_are_the_writers(contract) -> None:
    flags = contract["flags"]
    for key in ("format", "fanout", "timestamps", "backend"):
        assert all(accepts("capture", key, v) for v in flags[key]["values"]), key
        assert config.SCHEMA["capture"][key].default == flags[key]["default"]
    c = flags["compress"]
    assert accepts("capture", "compression", f"zstd:{c['level_min']}")
    assert accepts("capture", "compression", f"zstd:{c['level_max']}")
    assert not accepts("capture", "compression", f"zstd:{c['level_max'] + 1}")
    assert not accepts("capture", "compression", f"zstd:{c['level_min'] - 1}")


def test_auto_memory_and_its_limit_are_the_writers(contract) -> None:
    flags, ram = contract["flags"], contract["flags"]["memory"]["ram_bytes"]
    assert ram == config.ram_bytes()
    assert config.writer_memory_mb("auto", "auto", 1, ram) == (flags["ring_mb"]["auto"]["here_one_worker"],
                                                               flags["buffer_mb"]["auto"]["here"])
    half_mb = int(ram * flags["memory"]["max_share_of_ram"]) >> 20
    base = '[capture]\ninterfaces = ["x0"]\nspool = "/tmp/s"\nworkers = 2\nbuffer_mb = 64\n'
    config.loads(base + f"ring_mb = {(half_mb - 64) // 2}\n")
    with pytest.raises(config.ConfigError, match="more than half of this machine's"):
        config.loads(base + f"ring_mb = {(half_mb - 64) // 2 + 1}\n")


def test_file_names_are_the_writers(contract) -> None:
    files = contract["files"]
    assert files["part_suffix"] == ".part"
    assert set(files["extensions"].values()) <= set(disk_wd.CAPTURE_SUFFIXES)


def test_the_recorded_stats_lines_have_the_contracts_fields(contract) -> None:
    lines = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    kinds = {d["type"] for d in lines}
    assert kinds == {"stats", "file", "final", "recovered"}
    for d in lines:
        assert list(d) == contract["stats_fields"][d["type"]], d["type"]
        assert d["v"] == contract["stats_schema"] == writer.STATS_SCHEMA_VERSION
    assert set(writer.COUNTERS) <= set(contract["stats_fields"]["stats"])


def test_a_live_writers_lines_have_the_contracts_fields(contract, capture_binary: Path, link, tmp_path: Path) -> None:
    from tests.capture.conftest import start_writer
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(tmp_path)])
    w.wait_ready()
    assert w.stop() == 0
    for d in w.lines:
        assert list(d) == contract["stats_fields"][d["type"]], d["type"]


def test_key_rotate_seconds_range_is_the_writers(contract) -> None:
    spec = contract["flags"]["key_rotate_seconds"]
    lo, hi = spec["min"], spec["max"]
    assert accepts("privacy", "key_rotate_seconds", lo) and accepts("privacy", "key_rotate_seconds", hi)
    assert not accepts("privacy", "key_rotate_seconds", lo - 1) and not accepts("privacy", "key_rotate_seconds", hi + 1)
    assert config.SCHEMA["privacy"]["key_rotate_seconds"].default == spec["default"]
