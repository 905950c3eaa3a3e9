"""The C side of sluice-pcap: a short libFuzzer run of each reader target (longer by hand:
build/fuzz/fuzz/fuzz_pcapread_* -max_total_time=600 DIR). The C unit tests run through the
Makefile under each sanitizer: tests/build/test_native_build.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, require_tool

NATIVE = REPO / "native"


@pytest.fixture(scope="module")
def fuzz_build() -> Path:
    require_tool("clang")
    subprocess.run(["flock", "/tmp/sluice-native.lock", "make", "-C", str(NATIVE), "fuzz"], check=True,
                   capture_output=True, timeout=600)
    return NATIVE / "build" / "fuzz" / "fuzz"


@pytest.mark.parametrize("target", ["fuzz_pcapread_strict", "fuzz_pcapread_resync"])
def test_fuzz_reader_short_run(fuzz_build, tmp_path, target):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    # Seeds: a pcap and a pcapng written by peers (small, so mutations reach every branch).
    seeds = Path(__file__).parent / "seeds"
    for seed in seeds.iterdir():
        shutil.copy(seed, corpus / seed.name)
    proc = subprocess.run([str(fuzz_build / target), "-max_total_time=10", "-timeout=10", "-rss_limit_mb=2048",
                           "-print_final_stats=1", str(corpus)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done" in proc.stderr and "ERROR" not in proc.stderr
