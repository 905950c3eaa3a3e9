"""Log lines carry their level: the journal's `<N>` priority prefix when stderr is the journal
stream systemd named in $JOURNAL_STREAM, a word on a terminal or a redirected stderr."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from appliance import logs


@pytest.fixture(autouse=True)
def _restore_logging():  # noqa: ANN202
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def emit(stream_path: Path, journal_stream: str | None, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    if journal_stream is None:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    else:
        monkeypatch.setenv("JOURNAL_STREAM", journal_stream)
    with open(stream_path, "w") as stream:
        logs.setup(stream=stream)
        log = logging.getLogger("sluice.test")
        log.error("e")
        log.warning("w")
        log.info("i")
        log.debug("d")  # below the default level: not written
        for handler in logging.getLogger().handlers:
            handler.flush()
    return stream_path.read_text().splitlines()


def test_under_systemd_each_line_starts_with_its_journal_priority(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stderr"
    path.touch()
    st = os.stat(path)
    assert emit(path, f"{st.st_dev}:{st.st_ino}", monkeypatch) == ["<3>e", "<4>w", "<6>i"]


def test_elsewhere_the_level_is_a_word(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stderr"
    path.touch()
    expected = ["sluice: error: e", "sluice: warning: w", "sluice: i"]
    assert emit(path, None, monkeypatch) == expected
    # stderr redirected away from the journal stream systemd gave: not the journal any more.
    assert emit(path, "1:2", monkeypatch) == expected
