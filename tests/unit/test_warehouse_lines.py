"""The Python front end of compaction (``store/warehouse/lines.py``) gives the rows DuckDB's SQL path
gives, value for value, and leaves to that path every line it does not take the same way."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from test_lifecycle_cli import Recorded, recorded  # noqa: F401  (the fixture)
from warehouse_support import record

from decisiontrail.exporters.otlpjson import encode_attributes
from decisiontrail.store.warehouse import compact, lines
from decisiontrail.store.warehouse.engine import connect, sql_list


def _attrs(d: dict[str, Any]) -> list[dict[str, Any]]:
    return encode_attributes(d)


def _line(i: int, event: dict[str, Any] | None = None, span: dict[str, Any] | None = None,
          resource: dict[str, Any] | None = None) -> dict[str, Any]:
    """One OTLP-JSON request: a request span and a decision span with one decision event."""
    trace = f"{i:032X}"  # upper case: both paths lower it
    decision = {"model.name": "m", "model.version": "1", "decision.id": f"0190a000-0000-7000-8000-{i:012x}",
                "decision.input": json.dumps({"x": i, "s": "a\"b\\c"}), "decision.output": "[1]",
                "decision.label": "yes", "decision.score": 0.25, "decision.reason_codes": ["r1", "r2"],
                "decision.chain.id": "c", "decision.chain.seq": i, "decision.chain.hash": f"{i:064x}",
                "decision.key.loan_id": f"L-{i}", "enduser.pseudo.id": "p"}
    decision.update(event or {})
    t = 1_720_000_000_000_000_000 + i * 1_000_000
    return {"resourceSpans": [{
        "resource": {"attributes": _attrs(resource or {"service.name": "svc", "host.name": "h"})},
        "scopeSpans": [{"scope": {"name": "decisiontrail"}, "spans": [
            {"traceId": trace, "spanId": f"{2 * i:016x}", "name": "POST /x", "kind": 2,
             "startTimeUnixNano": str(t), "endTimeUnixNano": str(t + 9), "status": {"code": 0},
             "attributes": _attrs({"http.request.method": "POST", "http.response.status_code": 200})},
            {"traceId": trace, "spanId": f"{2 * i + 1:016x}", "parentSpanId": f"{2 * i:016x}", "name": "predict",
             "kind": 1, "startTimeUnixNano": str(t + 1), "endTimeUnixNano": str(t + 5), "flags": 259,
             "attributes": _attrs({"decision.audit": True, "model.name": "m", "decision.count": 1}),
             "events": [{"timeUnixNano": str(t + 4), "name": "model.decision", "attributes": _attrs(decision)}],
             **(span or {})}]}]}]}


def _odd_lines() -> list[str]:
    """Lines of every shape: the common ones, and ones the Python path leaves to SQL."""
    out = [json.dumps(_line(i)) for i in range(5)]
    variants: list[tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]] = [
        ({"my.count": 7, "my.ratio": 0.5, "my.flag": False, "my.text": "é/😀", "decision.key.rank": 3}, None, None),
        ({"my.big": 1e20, "my.small": 1e-7}, None, None),                   # exponents: SQL
        ({"my.list": ["a", 1], "my.map": {"k": b"\x00"}}, None, None),       # array, map, bytes attributes: SQL
        ({"my.ctl": "bell\x07"}, None, None),                               # a control character: SQL
        ({"decision.truncated": ["decision.input"], "decision.error": "boom", "model.framework": "sklearn"}, None, None),
        (None, {"links": [{"traceId": "AB" * 16, "spanId": "CD" * 8}], "status": {"code": 2, "message": "bad"}}, None),
        (None, {"attributes": _attrs({"decision.audit.records": 2})}, None),
        (None, {"kind": "SPAN_KIND_SERVER"}, None),                        # another type: SQL
        (None, None, {"service.name": "svc2", "process.pid": 12, "telemetry.sdk.language": "python"}),
        (None, None, {"process.command_args": ["python", "-m"]}),            # an array in the resource: SQL
        ({"decision.score": 1}, None, None),                                # an integer score
    ]
    for n, (event, span, resource) in enumerate(variants, start=10):
        out.append(json.dumps(_line(n, event, span, resource)))
    dup = _line(40)
    dup["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["events"][0]["attributes"] += _attrs({"model.name": "again"})
    out.append(json.dumps(dup))                                             # a duplicate key: SQL (first wins)
    bare = _line(41)
    ev = bare["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["events"][0]
    ev["attributes"].append({"key": "no.value"})
    ev["timeUnixNano"] = int(ev["timeUnixNano"])                            # a number, not a string
    del bare["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["status"]
    out.append(json.dumps(bare))
    replay = copy.deepcopy(_line(2))                                        # a replay of decision 2
    out.append(json.dumps(replay))
    out += ["", "   ", "{not json", json.dumps({"resourceSpans": []}), "[1, 2]"]
    return out


def _rows(wh: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = connect()
    try:
        out = {}
        for table, order in (("decisions", "decision_id, event_row"), ("spans", "trace_id, span_id")):
            files = sorted(str(f) for f in (wh / table).rglob("*.parquet"))
            out[table] = con.execute(f"SELECT * FROM read_parquet({sql_list(files)}, hive_partitioning = true, "
                                     f"union_by_name = true) ORDER BY {order}").fetchall() if files else []
        return out
    finally:
        con.close()


def _both(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[tuple[Any, ...]]]:
    """Compact ``data`` with the Python front end and without it: the same rows and counts."""
    assert lines.AVAILABLE  # msgspec comes with the warehouse extra
    fast = compact([data], tmp_path / "fast")
    with monkeypatch.context() as m:
        m.setattr(lines, "AVAILABLE", False)
        slow = compact([data], tmp_path / "slow")
    assert (fast.decisions, fast.duplicates, fast.spans, fast.bad_lines) == \
        (slow.decisions, slow.duplicates, slow.spans, slow.bad_lines)
    rows = _rows(tmp_path / "fast")
    assert rows == _rows(tmp_path / "slow")
    return rows


def test_every_shape_of_line_gives_the_rows_of_the_sql_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text("\n".join(_odd_lines()) + "\n")
    rows = _both(data, tmp_path, monkeypatch)
    assert len(rows["decisions"]) == 18 and len(rows["spans"]) == 36
    fast = lines.Rows()
    taken = []
    for line in _odd_lines():
        try:
            fast.add(line.encode())
            taken.append(True)
        except lines.Unhandled:
            taken.append(False)
    # The common lines are taken by Python; the odd ones lines.py lists are left to SQL (exponents, an
    # array attribute, a control character, a kind of another type, an array in the resource, a
    # duplicate key, then the blank and broken lines, which ingest does not even offer it).
    T, F = True, False
    assert taken == [T, T, T, T, T, T, F, F, F, T, T, T, F, T, F, T, F, T, T, F, F, F, T, F]


def test_recorded_stores_give_the_rows_of_the_sql_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    record(data, 40, batch=20, subjects=True)   # single decisions (Python) and a packed batch (SQL)
    rows = _both(data, tmp_path, monkeypatch)
    assert len(rows["decisions"]) == 60


def test_lifecycle_records_give_the_rows_of_the_sql_path(recorded: Recorded, tmp_path: Path,  # noqa: F811
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # The fixture recorded outcomes and reviews: spans with events other than decisions (SQL).
    rows = _both(recorded.path, tmp_path, monkeypatch)
    assert len(rows["decisions"]) == 3 and any(r for r in rows["spans"] if r[13] is not None)
