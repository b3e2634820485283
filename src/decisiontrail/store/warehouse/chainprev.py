"""``chain_prev`` stored once: a decision's previous chain hash is, nearly always, the ``chain_hash``
of the decision before it in its chain, and both are 64 random hex digits (the largest incompressible
columns of a part). So a part stores ``chain_prev`` as NULL, with ``chain_prev_derived`` true, where
it equals the ``chain_hash`` of the one decision of the same ``chain_id`` with ``chain_seq - 1`` in
the same part file (the rows of a packed event share their seq and hashes: any of them). Every
reader puts it back from the same file (:func:`restore_sql`), so the values read are the values
recorded; a part without the column (written before) reads as stored.

A chain hash not unique for its (chain, seq) in the file (a fork, a forged record) is never used to
derive anything: its successors keep their ``chain_prev`` as recorded.
"""

from __future__ import annotations

__all__ = ["DERIVED", "elide_sql", "restore_sql", "restore_matches_sql"]

DERIVED = "chain_prev_derived"
"""BOOLEAN column of ``decisions`` parts: ``chain_prev`` is the previous seq's ``chain_hash``."""


def _predecessors(rel: str, group: str) -> str:
    """(group..., chain_id, next_seq, prev_hash) of every (chain, seq) of ``rel`` with one hash."""
    return (f"SELECT {group + ', ' if group else ''}chain_id, chain_seq + 1 AS next_seq, min(chain_hash) AS prev_hash FROM {rel} "
            f"WHERE chain_seq IS NOT NULL AND chain_hash IS NOT NULL GROUP BY ALL "
            f"HAVING count(DISTINCT chain_hash) = 1")


def elide_sql(rel: str, group: str) -> str:
    """The rows of ``rel`` (one part file per distinct value of the ``group`` columns, e.g.
    ``date, model``; all one file when ``group`` is empty) with ``chain_prev`` elided where a reader
    can derive it from the same file."""
    on = " AND ".join([f"x.{g} = p.{g}" for g in (c.strip() for c in group.split(",")) if g] or ["true"])
    return (f"SELECT x.* REPLACE (CASE WHEN x.chain_prev = p.prev_hash THEN NULL ELSE x.chain_prev END AS chain_prev), "
            f"coalesce(x.chain_prev = p.prev_hash, false) AS {DERIVED} "
            f"FROM {rel} AS x LEFT JOIN ({_predecessors(rel, group)}) AS p "
            f"ON {on} AND x.chain_id = p.chain_id AND x.chain_seq = p.next_seq")


def restore_sql(parts: str) -> str:
    """The rows of ``parts`` (a relation over part files with a ``filename`` column and, in parts
    written since, ``chain_prev_derived``) with ``chain_prev`` as recorded, without either column."""
    return (f"SELECT x.* EXCLUDE (filename, {DERIVED}) REPLACE ("
            f"CASE WHEN x.{DERIVED} THEN p.prev_hash ELSE x.chain_prev END AS chain_prev) "
            f"FROM {parts} AS x LEFT JOIN ({_predecessors(parts, 'filename')}) AS p "
            f"ON x.{DERIVED} AND x.filename = p.filename AND x.chain_id = p.chain_id AND x.chain_seq = p.next_seq")


def restore_matches_sql(matches: str, parts: str, order: str) -> str:
    """:func:`restore_sql` for the few rows a query keeps: ``matches`` (a query over ``parts`` and the
    tail, ending with the columns ``filename`` and ``chain_prev_derived``) with ``chain_prev`` put
    back by looking up only their predecessors in ``parts`` (DuckDB pushes the join's key range
    into the Parquet scan, so a lookup by id reads a row group, not the partition), ordered by ``order``."""
    return f"""
WITH m AS MATERIALIZED ({matches}),
k AS (SELECT DISTINCT filename, chain_id, chain_seq - 1 AS seq FROM m WHERE {DERIVED}),
p AS (SELECT s.filename, s.chain_id, s.chain_seq + 1 AS next_seq, min(s.chain_hash) AS prev_hash
      FROM {parts} AS s JOIN k ON s.filename = k.filename AND s.chain_id = k.chain_id AND s.chain_seq = k.seq
      GROUP BY ALL HAVING count(DISTINCT s.chain_hash) = 1)
SELECT m.* EXCLUDE (filename, {DERIVED}) REPLACE (CASE WHEN m.{DERIVED} THEN p.prev_hash ELSE m.chain_prev END AS chain_prev)
FROM m LEFT JOIN p ON m.{DERIVED} AND m.filename = p.filename AND m.chain_id = p.chain_id AND m.chain_seq = p.next_seq
ORDER BY m.{order}"""
