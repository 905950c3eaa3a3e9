"""Load monitoring/grafana/generate.py (not a package: it lives with the dashboards it makes)."""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType

from tests.conftest import REPO

GRAFANA = REPO / "monitoring" / "grafana"
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*(\w+)\s*\)\s*$", re.DOTALL)


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sluice_grafana_generate", GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def as_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced so Prometheus can run it:
    every box and interface (`.+`), a 1-minute rate window, and label_values(X, l) as X."""
    m = _LABEL_VALUES.match(expr)
    if m:
        expr = m.group(1)
    return (expr.replace("$__rate_interval", "1m").replace("$__interval", "15s")
            .replace("$instance", ".+").replace("$interface", ".+"))
