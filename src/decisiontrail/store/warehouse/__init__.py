"""The decision warehouse: the audit files compacted into hive-partitioned Parquet, read with DuckDB.

- :func:`compact` (``decisiontrail compact``) builds and extends it, incrementally and crash-safely;
- :class:`WarehouseStore` reads it (plus the files' not-yet-compacted tail) behind the store protocol.

Layout and guarantees: :mod:`.layout` and docs/warehouse.md. Needs the ``warehouse`` extra (DuckDB).
"""

from __future__ import annotations

from .compact import CompactStats, compact, default_warehouse
from .store import WarehouseStore

__all__ = ["compact", "CompactStats", "default_warehouse", "WarehouseStore"]
