"""The decision warehouse: compaction (incremental, deduplicated, crash-safe) and reading through it
gives what the file reader gives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test_lifecycle_cli import Recorded, recorded  # noqa: F401  (the fixture)
from warehouse_support import record

from decisiontrail.cli import main

from decisiontrail.store.files import FileStore
from decisiontrail.store.protocol import open_store
from decisiontrail.store.query import Query
from decisiontrail.store.warehouse import WarehouseStore, compact
from decisiontrail.store.warehouse.layout import load_manifest
from decisiontrail.subjects import pseudonym_of

SUBJECT_3 = pseudonym_of("S-3", "s")


def dicts(records: Iterator[Any]) -> list[dict[str, Any]]:
    return sorted((r.to_dict() for r in records), key=lambda d: d["decision_id"])


def warehouse_rows(data: Path, wh: Path, q: Query | None = None) -> list[dict[str, Any]]:
    store = WarehouseStore([data], wh)
    try:
        return dicts(store.decisions(q or Query()))
    finally:
        store.close()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    record(d, 60, batch=300, subjects=True)
    return d


def test_reading_through_the_warehouse_gives_what_the_files_give(data: Path) -> None:
    stats = compact([data])
    assert stats.decisions == 360 and stats.duplicates == 0 and stats.commits == 1
    files = dicts(FileStore([data]).decisions(Query()))
    assert len(files) == 360
    assert warehouse_rows(data, data / "warehouse") == files
    packed = [d for d in files if d["model_name"] == "batcher"]
    assert len(packed) == 300 and packed[5]["input"] == [5.0, 5] and packed[5]["label"] == "1"
    assert packed[299]["decision.batch.index"] == 299


@pytest.mark.parametrize("q", [
    Query(label="deny"), Query(model="batcher"), Query(version="2", label="approve"),
    Query(where=[("input.applicant_id", "A-7")]), Query(where=[("input.income", "7000")]),
    Query(where=[("input.nested.k.1", "x"), ("decision.label", "approve")]),
    Query(where=[("input.nested.k.0", "9")]), Query(where=[("decision.reason_codes", "x")]),
    Query(where=[("output.p", "0.5")]), Query(limit=7), Query(model="nope"),
    # Subject and business keys: columns of their own (a column filter, not a parse of every row).
    Query(where=[("decision.key.loan_id", "L-12")]), Query(where=[("decision.key.loan_id", "")]),
    Query(where=[("decision.key.rank", "9")]), Query(where=[("decision.key.rank", "null")]),
    Query(where=[("enduser.pseudo.id", SUBJECT_3)]), Query(where=[("enduser.pseudo.id", "None")]),
    Query(where=[("enduser.id", "S-3")]), Query(where=[("model_version", "2"), ("trace_id", "nope")]),
], ids=repr)
def test_filters_run_in_duckdb_with_the_file_readers_meaning(data: Path, q: Query) -> None:
    compact([data])
    expected = dicts(FileStore([data]).decisions(Query(**{**q.__dict__, "limit": None})))
    got = warehouse_rows(data, data / "warehouse", q)
    if q.limit is not None:  # the warehouse returns the first by id; the files, the first read
        assert len(got) == q.limit and all(g in expected for g in got)
    else:
        assert got == expected


def test_a_decision_is_visible_from_the_files_before_compaction_and_reruns_read_only_new_lines(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data, 30)
    first = compact([data])
    live = data / "decisions.jsonl"
    size = live.stat().st_size
    assert first.bytes_read == size
    assert compact([data]).commits == 0  # idempotent: nothing new, nothing written
    record(data, 20, start=30)
    with open(live, "ab") as f:
        f.write(b'{"resourceSpans":[{"resource":')  # a line still being written
    grown = live.stat().st_size
    assert len(warehouse_rows(data, data / "warehouse")) == 50  # the tail is read with the warehouse
    second = compact([data])
    assert second.decisions == 20 and second.bytes_read == grown - size - len(b'{"resourceSpans":[{"resource":')
    assert warehouse_rows(data, data / "warehouse") == dicts(FileStore([data]).decisions(Query()))


def test_rotated_files_are_not_read_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data, 40, max_bytes=6000)
    assert len(list(data.glob("decisions-*.jsonl"))) >= 2
    compact([data])
    before = sum(f.stat().st_size for f in data.glob("*.jsonl"))
    record(data, 40, start=40, max_bytes=6000)  # rotates the live file again, writes new backups
    after = sum(f.stat().st_size for f in data.glob("*.jsonl"))
    stats = compact([data])
    assert stats.decisions == 40 and stats.duplicates == 0 and stats.bytes_read == after - before
    assert len(warehouse_rows(data, data / "warehouse")) == 80


def test_a_replay_days_later_is_deduplicated(data: Path, tmp_path: Path) -> None:
    compact([data])
    replay = data / "gateway-2" / "decisions.jsonl"  # the same spans delivered again, elsewhere
    replay.parent.mkdir()
    replay.write_bytes((data / "decisions.jsonl").read_bytes())
    os.utime(replay, (2e9, 2e9))
    store = WarehouseStore([data], data / "warehouse")
    assert len(dicts(store.decisions(Query()))) == 360 and store.stats.duplicates == 360
    store.close()
    stats = compact([data])
    assert (stats.decisions, stats.duplicates, stats.spans) == (0, 360, 0)
    assert warehouse_rows(data, data / "warehouse") == dicts(FileStore([data]).decisions(Query()))


def _snapshot(data: Path, wh: Path) -> tuple[list[dict[str, Any]], list[tuple[str, int]], int]:
    m = load_manifest(wh)
    assert m is not None
    spans = WarehouseStore([data], wh)
    n_spans = int(spans.connection().execute("SELECT count(*) FROM spans").fetchone()[0])
    spans.close()
    return warehouse_rows(data, wh), sorted((p.path, p.rows) for p in m.decisions + m.spans), n_spans


def test_compaction_killed_at_every_commit_step_then_rerun_gives_the_same_warehouse(
        data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = tmp_path / "reference"
    compact([data], reference, commit_bytes=40_000, chunk_bytes=20_000)
    expected = _snapshot(data, reference)
    assert len(expected[1]) > 4  # several commits, each with parts
    source = sorted((f.name, f.read_bytes()) for f in data.rglob("*.jsonl"))
    real_replace = os.replace
    for crash_at in range(1, 40):
        wh = tmp_path / f"wh-{crash_at}"
        calls = 0

        def crashing_replace(src: Any, dst: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == crash_at:
                raise KeyboardInterrupt("killed")  # not an Exception: nothing may catch it
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", crashing_replace)
        try:
            compact([data], wh, commit_bytes=40_000, chunk_bytes=20_000)
            finished = True
        except KeyboardInterrupt:
            finished = False
        monkeypatch.setattr(os, "replace", real_replace)
        compact([data], wh, commit_bytes=40_000, chunk_bytes=20_000)
        assert _snapshot(data, wh) == expected, f"crash at rename {crash_at}"
        if finished:
            break
    else:
        pytest.fail("the compaction never finished")
    assert sorted((f.name, f.read_bytes()) for f in data.rglob("*.jsonl")) == source  # never modified


def test_compaction_sigkilled_midway_then_rerun_gives_the_same_warehouse(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data, 300)
    reference = tmp_path / "reference"
    compact([data], reference, commit_bytes=60_000, chunk_bytes=30_000)
    expected = _snapshot(data, reference)
    code = ("import sys; from decisiontrail.store.warehouse import compact; "
            "compact([sys.argv[1]], sys.argv[2], commit_bytes=60_000, chunk_bytes=30_000)")
    killed = 0
    for stage in ("_staging", "MANIFEST"):  # killed once running, and once after its first commit
        wh = tmp_path / f"wh-{stage}"
        p = subprocess.Popen([sys.executable, "-c", code, str(data), str(wh)])
        while p.poll() is None and not (wh / stage).exists():
            time.sleep(0.005)
        if p.poll() is None:
            p.kill()
            killed += 1
        p.wait()
        compact([data], wh, commit_bytes=60_000, chunk_bytes=30_000)
        assert _snapshot(data, wh) == expected, f"killed at {stage}"
        shutil.rmtree(wh)
    assert killed, "every run finished before the kill: the test proved nothing"


def test_without_a_warehouse_the_files_are_read_and_with_one_the_warehouse(data: Path) -> None:
    assert isinstance(open_store([data]), FileStore)
    compact([data])
    store = open_store([data])
    assert isinstance(store, WarehouseStore)
    one = next(iter(FileStore([data]).decisions(Query(limit=1))))
    got = store.decision(one.decision_id)
    assert got is not None and got.to_dict() == one.to_dict()
    spans = store.trace(one.trace_id)
    assert [s.name for s in spans] == ["POST /loans"]  # record_decision records on the current span
    assert sum(1 for e in spans[0].events if e["name"] == "model.decision") == 1
    assert store.decision("01900000-0000-7000-8000-000000000000") is None


def test_outcomes_and_reviews_read_through_the_warehouse_as_through_the_files(
        recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = tmp_path / "files"
    shutil.copytree(recorded.path, files)
    compact([recorded.path])

    def out(data: Path, *args: str) -> tuple[int, str]:
        code = main([args[0], "--data", str(data), *args[1:]])
        return code, capsys.readouterr().out

    for args in (("query", "--format", "jsonl"), ("query", "--format", "jsonl", "--reviewed"),
                 ("query", "--format", "jsonl", "--where", "outcome=defaulted"),
                 ("query", "--format", "jsonl", "--effective-label", "approve", "--limit", "1"),
                 ("show", recorded.denied), ("show", "not-in-this-store"), ("verify",)):
        through_files, through_warehouse = out(files, *args), out(recorded.path, *args)
        assert through_warehouse == through_files, args
    assert "3 decisions, 5 outcome/review records, 0 problem(s)" in out(recorded.path, "verify")[1]


def test_the_web_pages_read_through_the_warehouse_as_through_the_files(data: Path, tmp_path: Path) -> None:
    from decisiontrail.web.source import DecisionSource, Filters

    files = tmp_path / "files"
    shutil.copytree(data, files)
    compact([data])
    by_files, by_warehouse = DecisionSource([files]), DecisionSource([data])
    for filters in (Filters(), Filters(label="deny", version="2"), Filters(where=(("input.income", "7000"),))):
        got = by_warehouse.search(filters, 0, 500)
        expected = by_files.search(filters, 0, 500)
        assert sorted(r.decision_id for r in got.rows) == sorted(r.decision_id for r in expected.rows) != []
    one = expected.rows[0]
    found, through_files = by_warehouse.decision(one.decision_id), by_files.decision(one.decision_id)
    assert found is not None and through_files is not None and found[0].to_dict() == through_files[0].to_dict()
    assert [s.span_id for s in by_warehouse.spans(one.trace_id)[0]] == [s.span_id for s in by_files.spans(one.trace_id)[0]]
