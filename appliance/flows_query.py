"""SQL over the pipeline's Parquet flows with DuckDB (embedded): table `flows` is every
`FLOWS_ROOT/host=H/date=D/*.parquet` file, read the Hive way (host and date are columns), the
same dataset Spark, Trino and pyarrow read unchanged (appliance.conns.flowsio's schema)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from appliance.errors import SluiceError


def query(root: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column names, rows) of SQL over table `flows` under ROOT. SluiceError (exit 2) for a
    missing dataset or SQL DuckDB refuses."""
    import duckdb

    if not any(name.endswith(".parquet") and not name.startswith(".")
               for _root, _dirs, names in os.walk(root) for name in names):
        raise SluiceError(f"flows query: {root}: no Parquet flows there yet (the pipeline's flows step writes them)", 2)
    db = duckdb.connect(":memory:")
    try:
        # Temporaries (.NAME.PID.tmp) never match *.parquet: a pass still writing is invisible.
        pattern = str(root / "host=*" / "date=*" / "*.parquet")
        db.execute(f"CREATE VIEW flows AS SELECT * FROM read_parquet('{_sql_string(pattern)}', "
                   "hive_partitioning = true, union_by_name = true)")
        try:
            cur = db.execute(sql)
        except duckdb.Error as exc:
            raise SluiceError(f"flows query: {str(exc).splitlines()[0]}", 2) from None
        columns = [d[0] for d in cur.description or []]
        return columns, cur.fetchall()
    finally:
        db.close()


def _sql_string(text: str) -> str:
    return text.replace("'", "''")
