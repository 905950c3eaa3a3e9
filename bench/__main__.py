"""`make bench`: runs every benchmark module in bench/ (bench_*.py) and prints its table."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main() -> int:
    wanted = sys.argv[1:]
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    failures = 0
    for name in names:
        if wanted and name not in wanted:
            continue
        print(f"=== {name}", flush=True)
        try:
            importlib.import_module(f"bench.{name}").main()
        except Exception as exc:  # one benchmark's failure must not hide the others' figures
            print(f"{name}: failed: {exc}", file=sys.stderr)
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
