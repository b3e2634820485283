"""DuckDB connections of the warehouse, with bounded memory and the warehouse's SQL macros."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .schema import MACROS

__all__ = ["connect", "duckdb_module", "sql_list", "MEMORY_LIMIT"]

MEMORY_LIMIT = os.environ.get("DECISIONTRAIL_DUCKDB_MEMORY", "512MB")
"""DuckDB's memory limit (beyond it, DuckDB spills to its temp directory): keeps a compaction of any
store size under 1 GB of RSS. ``DECISIONTRAIL_DUCKDB_MEMORY`` overrides it."""


def duckdb_module() -> Any:
    try:
        import duckdb
    except ImportError as exc:
        raise RuntimeError("the decision warehouse needs DuckDB: pip install 'decisiontrail[warehouse]'") from exc
    return duckdb


def connect(temp_directory: Path | None = None, threads: int | None = None) -> Any:
    """An in-memory DuckDB connection with the memory limit, one thread unless told otherwise (a
    compaction is measured per core; readers may use more) and the macros of :mod:`.schema`."""
    con = duckdb_module().connect(":memory:")
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute(f"SET threads = {int(threads or 1)}")
    # No automatic checkpoint of this in-memory database: it compressed the row tables every 16 MB
    # of inserts (half a second each for a 32 MB chunk of input, measured), only for them to be
    # read once and emptied at the commit. Memory stays bounded by memory_limit (DuckDB spills).
    con.execute("SET checkpoint_threshold = '1TB'")
    if temp_directory is not None:
        con.execute(f"SET temp_directory = {sql_str(str(temp_directory))}")
    con.execute(MACROS)
    return con


def sql_str(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def sql_list(items: list[str]) -> str:
    """A SQL list literal of strings (file lists for ``read_parquet``)."""
    return "[" + ", ".join(sql_str(i) for i in items) + "]"


__all__ += ["sql_str"]
