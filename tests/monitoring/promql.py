"""Small PromQL helpers for the monitoring tests: which metric names an expression reads.

Not a parser: it removes the parts of an expression that hold no metric names (strings, label
matchers, ranges, grouping clauses) and keeps the identifiers that are not functions or keywords.
Good enough for the rules and dashboards in this repo, and tested below on tricky cases.
"""

from __future__ import annotations

import re
from pathlib import Path

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "atan2",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_NAME_MATCHER = re.compile(r'__name__\s*=~?\s*"([^"]*)"')
_GRAFANA_VAR = re.compile(r"\$\{?\w+\}?")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (including {__name__=...} selectors)."""
    names: set[str] = set()
    for m in _NAME_MATCHER.finditer(expr):
        names.update(n for n in m.group(1).split("|") if n)
    text = _GRAFANA_VAR.sub("x", expr)
    text = _STRING.sub('""', text)
    text = _BRACES.sub("", text)
    text = _BRACKETS.sub("", text)
    text = _GROUPING.sub("", text)
    for m in _IDENT.finditer(text):
        ident, call = m.group(1), m.group(2)
        if call or ident.lower() in KEYWORDS:
            continue
        names.add(ident)
    # Numbers like 1e6 start with a digit and never match; durations were inside [] or after offset.
    return names


def documented_metrics(metrics_md: Path) -> set[str]:
    """Metric names in the first column of monitoring/METRICS.md's tables."""
    return set(re.findall(r"^\|\s*`(sluice_[a-z0-9_]+)`", metrics_md.read_text(), re.MULTILINE))


def is_builtin(name: str) -> bool:
    """Prometheus's own series and node_exporter's metrics, which every box also has."""
    return name in {"up", "scrape_duration_seconds", "scrape_samples_scraped"} or name.startswith("node_")
