"""At boot rauc.service may still be starting: `rauc status mark-good` then fails with D-Bus's
"Timeout was reached" (seen at the first boot under qemu TCG). Status calls are tried again;
other failures and installs are not. rauc here is a stand-in that answers as the real one did."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance import update
from appliance.errors import SluiceError

TIMEOUT_ERROR = ('rauc status mark-good booted failed: Error retrieving slot status via D-Bus: error calling '
                 'D-Bus method "GetSlotStatus": Timeout was reached')


@pytest.fixture
def rauc_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `rauc` that times out as many times as the file `fails` says, then succeeds; it logs its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "rauc"
    script.write_text(f"""#!/bin/sh
echo "$*" >> {tmp_path}/calls
n=$(cat {tmp_path}/fails)
if [ "$n" -gt 0 ]; then
    echo $((n - 1)) > {tmp_path}/fails
    echo '{TIMEOUT_ERROR}' >&2
    exit 1
fi
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def _calls(where: Path) -> list[str]:
    return (where / "calls").read_text().splitlines()


def test_a_status_call_that_times_out_is_tried_again(rauc_on_path: Path) -> None:
    (rauc_on_path / "fails").write_text("2\n")
    update.run_rauc(update.RAUC_CONF, "status", "mark-good", "booted", retry_seconds=0.01)
    assert _calls(rauc_on_path) == ["status mark-good booted"] * 3


def test_it_gives_up_after_its_attempts_and_says_why(rauc_on_path: Path) -> None:
    (rauc_on_path / "fails").write_text("100\n")
    with pytest.raises(SluiceError, match="Timeout was reached"):
        update.run_rauc(update.RAUC_CONF, "status", "mark-good", "booted", retry_seconds=0.01)
    assert len(_calls(rauc_on_path)) == update.STATUS_ATTEMPTS


def test_an_install_is_never_repeated(rauc_on_path: Path) -> None:
    (rauc_on_path / "fails").write_text("1\n")
    with pytest.raises(SluiceError):
        update.run_rauc(update.RAUC_CONF, "install", "/nonexistent.raucb", retry_seconds=0.01)
    assert _calls(rauc_on_path) == ["install /nonexistent.raucb"]
