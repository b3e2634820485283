"""Merging a partition's small parts into one, so lookups open few files and row-group statistics
prune again.

Every commit writes one part per partition it touches, so a compaction run from cron every few
minutes (or a big first run, committed every 256 MB) leaves many small parts in each day: each a
file to open per lookup, and each one row group whose ``trace_id`` range covers nearly all ids, so
a trace lookup reads every one of them. At the end of a run, the parts of a partition smaller than
:data:`MERGE_ROWS` are merged into one sorted part when there are at least :data:`MERGE_MIN` of
them (so a row is rewritten a few times at most, never once per run).

Same commit protocol as new rows: the merged part is written to ``_staging``, fsynced and renamed
into its partition, then a new MANIFEST lists it instead of the parts it replaces (the commit
point). A run killed before that leaves an unlisted part, deleted by the next run, which merges
again. The replaced parts stay on disk until the next run deletes them (a reader that loaded the
previous MANIFEST may still be reading them).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from .chainprev import DERIVED, elide_sql, restore_sql
from .engine import sql_list, sql_str
from .layout import TABLES, Manifest, Part, fsync_dir, write_manifest

__all__ = ["merge_small_parts", "MERGE_ROWS", "MERGE_MIN"]

MERGE_ROWS = 131_072
"""Parts with fewer rows (8 row groups) are merged."""
MERGE_MIN = 4
"""A partition's small parts are merged when there are at least this many."""


def _merged_sql(table: str, files: list[str]) -> str:
    scan = f"read_parquet({sql_list(files)}, union_by_name = true, hive_partitioning = false, filename = true)"
    if table == "decisions":  # chain_prev put back from each old file, elided again within the new one
        scan = f"(SELECT * FROM {scan} UNION ALL BY NAME SELECT NULL::BOOLEAN AS {DERIVED} WHERE false)"
        rows = f"{elide_sql(f'({restore_sql(scan)})', '')} ORDER BY decision_id"
    else:
        rows = f"SELECT * EXCLUDE (filename) FROM {scan} ORDER BY trace_id, start_time_unix_nano"
    return f"({rows})"


def merge_small_parts(con: Any, warehouse: Path, manifest: Manifest, parquet_options: str) -> tuple[Manifest, int]:
    """Merge small parts (see the module docstring) in one commit; returns the manifest in force and
    how many parts were replaced. ``parquet_options`` are the COPY options of every part."""
    commit = manifest.commit + 1
    staging = warehouse / "_staging" / f"merge-{commit:08d}"
    staging.mkdir(parents=True, exist_ok=True)
    kept: dict[str, list[Part]] = {}
    replaced = 0
    for table in TABLES:
        by_dir: dict[str, list[Part]] = defaultdict(list)
        for p in manifest.parts(table):
            by_dir[p.path.rsplit("/", 1)[0]].append(p)
        parts: list[Part] = []
        for i, (directory, group) in enumerate(sorted(by_dir.items())):
            small = [p for p in group if p.rows < MERGE_ROWS]
            if len(small) < MERGE_MIN:
                parts.extend(group)
                continue
            tmp = staging / f"{table}-{i:06d}.parquet"
            files = [str(warehouse / p.path) for p in small]
            con.execute(f"COPY {_merged_sql(table, files)} TO {sql_str(str(tmp))} "
                        f"(FORMAT parquet, {parquet_options})")
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            target = warehouse / directory / f"part-{commit:08d}-m{i:04d}.parquet"
            os.replace(tmp, target)
            fsync_dir(target.parent)
            parts.extend(p for p in group if p.rows >= MERGE_ROWS)
            parts.append(Part(target.relative_to(warehouse).as_posix(), sum(p.rows for p in small)))
            replaced += len(small)
        kept[table] = parts
    if replaced:
        manifest = Manifest(commit=commit, decisions=kept["decisions"], spans=kept["spans"],
                            sources=manifest.sources)
        write_manifest(warehouse, manifest)
    return manifest, replaced
