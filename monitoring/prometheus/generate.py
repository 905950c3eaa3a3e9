"""Renders the Sluice alert rules from alerts.yml.in and a thresholds file (TOML).

    python3 monitoring/prometheus/generate.py                 # rules/alerts.yml from alerts.toml
    python3 monitoring/prometheus/generate.py --config SITE.toml --out /etc/prometheus/rules/sluice.yml

SITE.toml holds only the keys a site changes; the others keep alerts.toml's values. An unknown
key or a value of the wrong type is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import string
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "alerts.yml.in"
DEFAULTS = HERE / "alerts.toml"
OUTPUT = HERE / "rules" / "alerts.yml"


class RuleTemplate(string.Template):
    delimiter = "@"  # the rules are full of Prometheus' own $labels and $value


def thresholds(site: dict[str, object]) -> dict[str, object]:
    values = tomllib.loads(DEFAULTS.read_text())
    for key, value in site.items():
        if key not in values:
            raise ValueError(f"unknown key {key!r} (known: {', '.join(sorted(values))})")
        if type(value) is not type(values[key]) and not (isinstance(values[key], float) and type(value) is int):
            raise ValueError(f"{key} must be a {type(values[key]).__name__}, not {value!r}")
        values[key] = value
    values["runbook_base_url"] = str(values["runbook_base_url"]).rstrip("/")
    # Derived: the offset rule compares seconds.
    values["clock_offset_max_seconds"] = float(values["clock_offset_max_ms"]) / 1000  # type: ignore[arg-type]
    return values


def render(site: dict[str, object] | None = None) -> str:
    return RuleTemplate(TEMPLATE.read_text()).substitute(thresholds(site or {}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Render the Sluice alert rules from a thresholds file.")
    ap.add_argument("--config", type=Path, help="a site's thresholds (TOML); default: alerts.toml alone")
    ap.add_argument("--out", type=Path, default=OUTPUT, help=f"default: {OUTPUT}")
    args = ap.parse_args(argv)
    try:
        site = tomllib.loads(args.config.read_text()) if args.config else {}
        text = render(site)
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        print(f"generate.py: {args.config}: {exc}", file=sys.stderr)
        return 2
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
