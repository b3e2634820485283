"""The warehouse's columns and parts: subject and business keys in columns of their own,
``chain_prev`` stored once and read back as recorded, the declared row tables matching the SQL that
fills them, and small parts merged (crash-safely)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from warehouse_support import record

from decisiontrail.store.files import FileStore
from decisiontrail.store.query import Query
from decisiontrail.store.warehouse import WarehouseStore, compact
from decisiontrail.store.warehouse.chainprev import DERIVED, elide_sql, restore_sql
from decisiontrail.store.warehouse.engine import connect, sql_str
from decisiontrail.store.warehouse.filters import where_sql
from decisiontrail.store.warehouse.layout import load_manifest
from decisiontrail.store.warehouse.merge import MERGE_MIN
from decisiontrail.store.warehouse.schema import DECISION_ROW, SPAN_ROW, decisions_sql, span_rows_sql, spans_sql
from decisiontrail.subjects import pseudonym_of


def test_the_declared_row_tables_have_the_types_the_row_sql_gives() -> None:
    con = connect()
    con.execute(f"CREATE VIEW sp AS {spans_sql('(SELECT NULL::VARCHAR AS json WHERE false)')}")
    for sql, declared in ((decisions_sql("sp"), DECISION_ROW), (span_rows_sql("sp"), SPAN_ROW)):
        described = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {sql}").fetchall()]
        assert described == [(n, "TIMESTAMP WITH TIME ZONE" if t == "TIMESTAMPTZ" else t) for n, t in declared]
    con.close()


def test_subject_and_business_keys_are_columns_and_lookups_filter_on_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data, 30, subjects=True)
    compact([data])
    store = WarehouseStore([data], data / "warehouse")
    try:
        rows = store.connection().execute(
            "SELECT keys, subject_pseudo_id, attributes::VARCHAR FROM decisions ORDER BY decision_id").fetchall()
        assert len(rows) == 30
        assert all(keys["loan_id"].startswith("L-") and subject.startswith("hmac-sha256:") for keys, subject, _ in rows)
        assert all("loan_id" not in attrs for _, _, attrs in rows)  # not stored twice
        assert sum('"decision.key.rank"' in attrs for _, _, attrs in rows) == 10  # an integer: not a string key
        subject = pseudonym_of("S-3", "s")
        for q, n in ((Query(where=[("decision.key.loan_id", "L-12")]), 1),
                     (Query(where=[("enduser.pseudo.id", subject)]), 4),  # i = 3, 10, 17, 24
                     (Query(where=[("decision.key.rank", "9")]), 1)):
            got = [d.to_dict() for d in store.decisions(q)]
            assert len(got) == n and sorted(got, key=str) == sorted((d.to_dict() for d in FileStore([data]).decisions(q)), key=str)
        # A string key or subject is a plain column comparison (pushed into the Parquet scan).
        assert where_sql(Query(where=[("enduser.pseudo.id", subject)])) == ("subject_pseudo_id = ?", [subject])
        assert where_sql(Query(where=[("decision.key.loan_id", "L-12")])) == ("keys[?] = ?", ["loan_id", "L-12"])
    finally:
        store.close()


def test_a_filter_on_chain_prev_sees_it_as_recorded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data, 12)
    compact([data])
    files = sorted((d.to_dict() for d in FileStore([data]).decisions(Query())), key=lambda d: d["decision_id"])
    prev = files[5]["decision.chain.prev"]
    assert prev == files[4]["decision.chain.hash"]  # derived in the part, not stored
    store = WarehouseStore([data], data / "warehouse")
    try:
        assert [d.to_dict() for d in store.decisions(Query(where=[("decision.chain.prev", prev)]))] == [files[5]]
        assert [d.to_dict() for d in store.decisions(Query(limit=1, where=[("decision.label", files[5]["label"]),
                                                                            ("decision.id", files[5]["decision_id"])]))] \
            == [files[5]]  # its predecessor is not among the matches: looked up
    finally:
        store.close()


def _chain_rows() -> list[tuple[Any, ...]]:
    """(decision_id, chain_id, chain_seq, chain_prev, chain_hash): a chain with a packed event, a
    gap, a fork and a row without prev; another chain; decisions without a chain."""
    return [
        ("d01", "c", 1, "", "h1"), ("d02", "c", 2, "h1", "h2"),
        ("d03", "c", 3, "h2", "h3"), ("d04", "c", 3, "h2", "h3"), ("d05", "c", 3, "h2", "h3"),  # packed event
        ("d06", "c", 4, "h3", "h4"),
        ("d07", "c", 6, "h5", "h6"),  # seq 5 (an outcome, say) is not a decision: kept
        ("d08", "c", 7, "h6", "h7a"), ("d09", "c", 7, "h6", "h7b"),  # a fork: two hashes for seq 7
        ("d10", "c", 8, "h7a", "h8"),  # its predecessor is ambiguous: kept
        ("d11", "c", 9, None, "h9"),  # recorded without prev: stays without
        ("d12", "c", 10, "not-h9", "h10"),  # a prev that is not the predecessor's hash: kept
        ("d13", "k", 1, "", "k1"), ("d14", "k", 2, "k1", "k2"),
        ("d15", None, None, None, None),
    ]


def test_chain_prev_is_stored_once_and_read_back_as_recorded(tmp_path: Path) -> None:
    con = connect()
    con.execute("CREATE TABLE x (decision_id VARCHAR, chain_id VARCHAR, chain_seq BIGINT, chain_prev VARCHAR, "
                "chain_hash VARCHAR)")
    con.executemany("INSERT INTO x VALUES (?, ?, ?, ?, ?)", _chain_rows())
    out = tmp_path / "parts"
    rel = "(SELECT *, 'd' AS date, 'm' AS model FROM x)"
    con.execute(f"COPY ({elide_sql(rel, 'date, model')} ORDER BY decision_id) TO {sql_str(str(out))} "
                f"(FORMAT parquet, PARTITION_BY (date, model))")
    glob = sql_str(str(out / "**" / "*.parquet"))
    stored = dict(con.execute(f"SELECT decision_id, chain_prev FROM read_parquet({glob})").fetchall())
    derived = {r[0] for r in con.execute(f"SELECT decision_id FROM read_parquet({glob}) WHERE {DERIVED}").fetchall()}
    assert derived == {"d02", "d03", "d04", "d05", "d06", "d08", "d09", "d14"}
    assert all(stored[d] is None for d in derived)
    scan = f"read_parquet({glob}, hive_partitioning = true, filename = true)"
    back = con.execute(f"SELECT decision_id, chain_id, chain_seq, chain_prev, chain_hash FROM ({restore_sql(scan)}) "
                       f"ORDER BY decision_id").fetchall()
    assert back == _chain_rows()
    con.close()


@pytest.mark.parametrize("where", ["decision_id = 'd10'", "chain_seq = 3", "true"])
def test_chain_prev_is_put_back_whatever_the_filter(tmp_path: Path, where: str) -> None:
    """The predecessor is looked up in the whole file, not among the rows a filter keeps."""
    test_chain_prev_is_stored_once_and_read_back_as_recorded(tmp_path)
    con = connect()
    scan = f"read_parquet({sql_str(str(tmp_path / 'parts' / '**' / '*.parquet'))}, hive_partitioning = true, filename = true)"
    got = con.execute(f"SELECT decision_id, chain_id, chain_seq, chain_prev, chain_hash FROM ({restore_sql(scan)}) "
                      f"WHERE {where} ORDER BY decision_id").fetchall()
    wanted = [r for r in _chain_rows() if where == "true" or (where.endswith("'d10'") and r[0] == "d10")
              or (where == "chain_seq = 3" and r[2] == 3)]
    assert got == wanted and got
    con.close()


def _parts(wh: Path) -> list[tuple[str, int]]:
    m = load_manifest(wh)
    assert m is not None
    return sorted((p.path, p.rows) for p in m.decisions + m.spans)


def test_small_parts_are_merged_and_the_replaced_ones_deleted_by_the_next_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for run in range(MERGE_MIN):  # a compaction after every few decisions, as from cron
        record(data, 5, start=5 * run, subjects=True)
        stats = compact([data])
    assert stats.merged == 2 * MERGE_MIN  # the decisions' and the spans' parts of the one partition
    parts = _parts(data / "warehouse")
    assert len(parts) == 2 and [rows for path, rows in parts if path.startswith("decisions/")] == [5 * MERGE_MIN]
    on_disk = sorted(f.relative_to(data / "warehouse").as_posix() for f in (data / "warehouse").rglob("part-*"))
    assert len(on_disk) == 2 * MERGE_MIN + 2  # the replaced parts stay until the next run
    files = sorted((d.to_dict() for d in FileStore([data]).decisions(Query())), key=str)
    store = WarehouseStore([data], data / "warehouse")
    assert sorted((d.to_dict() for d in store.decisions(Query())), key=str) == files  # chain_prev and all
    assert len(store.trace(files[0]["trace_id"])) == len(FileStore([data]).trace(files[0]["trace_id"]))
    store.close()
    compact([data])
    assert sorted(f.relative_to(data / "warehouse").as_posix() for f in (data / "warehouse").rglob("part-*")) \
        == sorted(path for path, _ in parts)


def test_a_merge_killed_at_any_step_then_rerun_gives_the_same_warehouse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    for run in range(MERGE_MIN - 1):
        record(data, 5, start=5 * run)
        compact([data])
    record(data, 5, start=20)
    base = tmp_path / "base"
    shutil.copytree(data / "warehouse", base)
    compact([data])  # the run that merges
    expected = _parts(data / "warehouse")
    real_replace = os.replace
    for crash_at in range(1, 20):
        wh = tmp_path / f"wh-{crash_at}"
        shutil.copytree(base, wh)
        calls = 0

        def crashing_replace(src: Any, dst: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == crash_at:
                raise KeyboardInterrupt("killed")
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", crashing_replace)
        try:
            compact([data], wh)
            finished = True
        except KeyboardInterrupt:
            finished = False
        monkeypatch.setattr(os, "replace", real_replace)
        compact([data], wh)
        assert _parts(wh) == expected, f"crash at rename {crash_at}"
        if finished:
            break
    else:
        pytest.fail("the compaction never finished")
