"""The native build: each program and unit test links only what it uses, the release build is
hardened, and the SANITIZE switch builds and runs the C unit tests under each sanitizer."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, require_tool

NATIVE = REPO / "native"
UNIT_TESTS = sorted(p.stem for p in (NATIVE / "tests").glob("test_*.c"))


def make(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["flock", "/tmp/sluice-native.lock", "make", "-C", str(NATIVE), *args],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def release() -> Path:
    make("-s")
    return NATIVE / "build"


def needed(binary: Path) -> set[str]:
    out = subprocess.run([require_tool("readelf"), "-dW", str(binary)], capture_output=True, text=True,
                         check=True).stdout
    return {line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line}


def symbols(binary: Path) -> set[str]:
    out = subprocess.run(["nm", str(binary)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


def defined_in(source: Path) -> set[str]:
    """The external functions a C file defines (its object's T symbols)."""
    obj = NATIVE / "build" / "obj" / source.relative_to(NATIVE).with_suffix(".o")
    out = subprocess.run(["nm", "--defined-only", "--extern-only", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if " T " in line}


def test_sluice_capture_carries_no_flow_table(release: Path) -> None:
    # libcrypto and Crypto-PAn are there for --anonymize (addresses anonymised before the disk)
    capture = needed(release / "sluice-capture")
    assert {"libpcap.so.0.8", "libzstd.so.1", "libseccomp.so.2"} <= capture
    syms = symbols(release / "sluice-capture")
    for module in ("flowtable", "ipfix", "dupwindow"):
        own = defined_in(NATIVE / "src" / "lib" / f"{module}.c")
        assert own and not own & syms, f"sluice-capture links {module}: {sorted(own & syms)}"


def test_sluice_pcap_links_libcrypto_and_libpcap_but_not_liburing(release: Path) -> None:
    pcap = needed(release / "sluice-pcap")
    assert any(lib.startswith("libcrypto") for lib in pcap) and "libpcap.so.0.8" in pcap, pcap
    assert not any(lib.startswith("liburing") for lib in pcap), pcap


@pytest.mark.parametrize("program", ["sluice-capture", "sluice-pcap"])
def test_release_build_is_hardened(release: Path, program: str) -> None:
    binary = release / program
    header = subprocess.run(["readelf", "-hW", str(binary)], capture_output=True, text=True, check=True).stdout
    assert "DYN (Position-Independent Executable file)" in header
    dynamic = subprocess.run(["readelf", "-dW", str(binary)], capture_output=True, text=True, check=True).stdout
    assert "BIND_NOW" in dynamic and "PIE" in dynamic
    segments = subprocess.run(["readelf", "-lW", str(binary)], capture_output=True, text=True, check=True).stdout
    assert "GNU_RELRO" in segments
    syms = symbols(binary)
    assert "__stack_chk_fail" in syms, "no stack protector"
    assert any(s.endswith("_chk") and s != "__stack_chk_fail" for s in syms), "no _FORTIFY_SOURCE checked calls"


@pytest.mark.parametrize("sanitizer", ["address,undefined", "thread"])
def test_c_unit_tests_pass_under_sanitizer(sanitizer: str) -> None:
    proc = make("test", f"SANITIZE={sanitizer}")
    for name in UNIT_TESTS:
        assert f"{name}: ok" in proc.stdout, proc.stdout[-2000:]


def test_a_unit_test_links_only_its_module() -> None:
    make("-s", "test")
    cryptopan = symbols(NATIVE / "build" / "asan" / "tests" / "test_cryptopan")
    for other in ("src/common/pcapread.c", "src/common/pcapenc.c", "src/capture/slice.c"):
        own = defined_in(NATIVE / other)
        assert own and not own & cryptopan, f"test_cryptopan links {other}"


def test_a_unit_test_without_a_module_list_is_refused(tmp_path: Path) -> None:
    stray = NATIVE / "tests" / "test_zz_unlisted.c"
    stray.write_text("int main(void) { return 0; }\n")
    try:
        proc = subprocess.run(["make", "-C", str(NATIVE), "-n", "test"], capture_output=True, text=True)
    finally:
        stray.unlink()
    assert proc.returncode != 0
    assert "list the modules of test_zz_unlisted" in proc.stderr
