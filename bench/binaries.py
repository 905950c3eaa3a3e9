"""Another build of a Sluice program beside the current one (bench_capture's --capture-bin,
bench_pcap's --pcap-bin): the LABEL=PATH option, checked as argparse parses it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def label_and_path(value: str) -> tuple[str, Path]:
    """LABEL=PATH as an argparse type: a bad value is one line on stderr and exit 2."""
    label, sep, path = value.partition("=")
    if not sep or not label or not path or not label.replace("-", "").replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(f"{value!r}: expected LABEL=PATH (LABEL letters, digits, - or _)")
    binary = Path(path)
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise argparse.ArgumentTypeError(f"{value!r}: {path} is not an executable file")
    return label, binary.resolve()


def positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a whole number from 1")
    return int(value)
