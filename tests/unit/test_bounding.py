"""Bounded encoding keeps the record whole: valid JSON within the cap whatever the input, small fields
intact next to big ones, markers that say what was replaced, hashes of the full values."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from decisiontrail import record_decision, stats
from decisiontrail.conventions import DecisionAttributes as D
from decisiontrail.conventions import ModelAttributes as M
from decisiontrail.encoding import FieldEncoder, canonical_json, encode, sha256_hex
from decisiontrail.recorder import get_recorder

if TYPE_CHECKING:
    from tests.unit.conftest import Store

CAP = 8192


def strict(text: str) -> Any:
    """RFC 8259 JSON: no NaN, Infinity or -Infinity."""
    def no_constants(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=no_constants)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "decisiontrail.cli", *args], capture_output=True, text=True,
                          timeout=120)


def deep(n: int, leaf: Any) -> Any:
    out: Any = leaf
    for _ in range(n):
        out = [out]
    return out


def cyclic_with_big_leaf() -> Any:
    d: dict[str, Any] = {"k": 1, "big": "z" * 50_000}
    d["self"] = d
    return d


HOSTILE: dict[str, Callable[[], Any]] = {
    "huge string": lambda: {"essay": "x" * 300_000, "n": 1},
    "huge string of escapes": lambda: '"\\\n\t\x00' * 60_000,
    "huge unicode with lone surrogates": lambda: "é🙂\ud800" * 50_000,
    "huge list": lambda: list(range(200_000)),
    "huge numpy array": lambda: {"scan": np.random.default_rng(0).random((600, 600)), "f": np.float32(0.5)},
    "huge numpy NaN array": lambda: {"x": np.full(100_000, np.nan), "y": 2},
    "many keys": lambda: {f"k{i}": i for i in range(50_000)},
    "many medium strings": lambda: {f"s{i:03}": "y" * (i * 10) for i in range(200)},
    "deep nesting": lambda: deep(5000, 1),
    "deep nesting with a big leaf": lambda: deep(40, "w" * 100_000),
    "NaN and inf": lambda: {"a": [math.nan, math.inf, -math.inf] * 10_000, "b": "small"},
    "huge bytes": lambda: {"blob": b"\xff" * 1_000_000, "many": [b"\x01" * 3000] * 200},
    "cycle with a big leaf": cyclic_with_big_leaf,
    "big DataFrame": lambda: pd.DataFrame({"a": np.arange(50_000), "b": np.arange(50_000) * 0.5}),
    "big Series": lambda: pd.Series(np.arange(100_000)),
    "big set": lambda: set(range(100_000)),
    "wide flat list of dicts": lambda: [{"i": i, "t": "v" * 50} for i in range(5000)],
}


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("cap", [256, 1000, CAP])
def test_every_hostile_value_encodes_to_valid_json_within_the_cap(name: str, cap: int) -> None:
    value = HOSTILE[name]()
    enc = encode(value, max_chars=cap)
    strict(enc.text)
    assert len(enc.text) <= cap
    assert enc.truncated
    assert enc.full_hash == sha256_hex(canonical_json(value)) or name == "cycle with a big leaf"


@pytest.mark.parametrize("name", list(HOSTILE))
def test_every_hostile_value_is_recorded_as_valid_json(store: Store, name: str) -> None:
    value = HOSTILE[name]()
    did = record_decision("m", value, value, explanation=value)
    (d,) = store.decisions()
    assert d.decision_id == did and D.ERROR not in d.attributes
    for key in (D.INPUT, D.OUTPUT, D.EXPLANATION):
        text = d.attributes[key]
        strict(text)
        assert len(text) <= CAP
    assert {p.split(".")[0].split("[")[0] for p in d.attributes[D.TRUNCATED]} == {"input", "output", "explanation"}
    for key in (D.INPUT_HASH, D.OUTPUT_HASH, D.EXPLANATION_HASH):
        assert d.attributes[key].startswith("sha256:")
    if name == "deep nesting":  # cut at max_depth by the canonical form, which says where
        assert d.attributes[D.INPUT_HASH] == sha256_hex(d.attributes[D.INPUT])
        assert f"input{'[0]' * 32}" in d.attributes[D.TRUNCATED]
    assert stats.snapshot()["recording_errors"] == 0


def test_small_values_are_stored_exactly_as_before() -> None:
    value = {"income": 52000.0, "debt_ratio": 0.31, "tags": ["a", "b"], "nan": math.nan}
    assert FieldEncoder(CAP)(value, "input") == canonical_json(value)
    assert FieldEncoder(CAP)({"a": 1}, "input") == '{"a":1}'


def marker_at(stored: Any, path: list[Any]) -> dict[str, Any]:
    for p in path:
        stored = stored[p]
    assert isinstance(stored, dict) and "$truncated" in stored
    return stored


def test_a_big_string_leaves_the_small_fields_whole_and_is_marked() -> None:
    essay = "Dear sir, " + "lorem ipsum " * 20_000
    value = {"essay": essay, "loan_amount": 15000.0, "zip": "94110"}
    r = FieldEncoder(CAP)(value, "input")
    assert not isinstance(r, str)
    stored = strict(r.text)
    assert stored["loan_amount"] == 15000.0 and stored["zip"] == "94110"
    m = marker_at(stored, ["essay"])
    assert m == {"$truncated": "str", "len": len(essay), "head": essay[:64],
                 "sha256": sha256_hex(canonical_json(essay))[7:]}
    assert r.cut == ("input.essay",) and r.full == canonical_json(value)


def test_a_big_array_is_marked_with_shape_dtype_and_hash() -> None:
    scan = np.arange(2000 * 2000, dtype=np.float64).reshape(2000, 2000)
    r = FieldEncoder(CAP)({"scan": scan, "threshold": np.float32(0.25)}, "input")
    assert not isinstance(r, str)
    stored = strict(r.text)
    assert stored["threshold"] == 0.25
    m = marker_at(stored, ["scan"])
    assert (m["$truncated"], m["shape"], m["dtype"]) == ("ndarray", [2000, 2000], "float64")
    scan_text = r.full[len('{"scan":'):-len(',"threshold":0.25}')]  # the array formatted once, not twice
    assert r.full == '{"scan":' + scan_text + ',"threshold":0.25}' and scan_text.startswith("[[0.0,1.0,2.0")
    assert m["sha256"] == sha256_hex(scan_text)[7:] and m["head"] == scan_text[:64]


def test_the_budget_goes_to_the_smallest_members_first() -> None:
    value = {"a": "x" * 100, "b": "y" * 3000, "c": "z" * 2000, "d": 1, "e": "w" * 9000}
    stored = strict(FieldEncoder(6000)(value, "input").text)  # type: ignore[union-attr]
    assert (stored["a"], stored["c"], stored["d"], stored["b"]) == ("x" * 100, "z" * 2000, 1, "y" * 3000)
    assert stored["e"]["$truncated"] == "str"


def test_paths_of_nested_members_and_odd_keys() -> None:
    value = {"applicant": {"docs": ["ok", "p" * 20_000], "age": 40}, "a b": "q" * 20_000}
    r = FieldEncoder(CAP)(value, "input")
    assert not isinstance(r, str)
    assert sorted(r.cut) == ["input.applicant.docs[1]", 'input["a b"]']
    stored = strict(r.text)
    assert stored["applicant"]["age"] == 40 and stored["applicant"]["docs"][0] == "ok"


def test_a_container_with_too_many_members_is_one_marker() -> None:
    r = FieldEncoder(CAP)({"counts": {f"k{i}": i for i in range(10_000)}, "id": 3}, "input")
    assert not isinstance(r, str)
    stored = strict(r.text)
    assert stored["id"] == 3 and marker_at(stored, ["counts"])["len"] == 10_000


def test_query_where_finds_the_small_field_next_to_a_big_one(store: Store) -> None:
    did = record_decision("loan", {"essay": "e" * 240_000, "loan_amount": 15000.0, "zip": "94110"},
                          {"approved": False})
    other = record_decision("loan", {"essay": "short", "loan_amount": 900.0, "zip": "10001"}, {"approved": True})
    store.decisions()
    for where in ("input.loan_amount=15000", "input.zip=94110"):
        p = cli("query", "--data", str(store.path), "--where", where, "--format", "jsonl")
        assert p.returncode == 0, p.stderr
        rows = [json.loads(line) for line in p.stdout.splitlines()]
        assert [r["decision_id"] for r in rows] == [did]
        assert rows[0][D.TRUNCATED] == ["input.essay"] and rows[0]["input"]["essay"]["len"] == 240_000
    assert other != did


def test_bounded_inputs_verify_and_an_edited_summary_does_not(store: Store) -> None:
    record_decision("loan", {"essay": "e" * 240_000, "loan_amount": 15000.0}, 1)
    record_decision("loan", {"essay": "fine", "loan_amount": 20.0}, 0)
    store.decisions()
    p = cli("verify", "--data", str(store.path))
    assert p.returncode == 0, p.stdout + p.stderr
    (f,) = [f for f in store.path.rglob("*.json*") if "spool" not in f.parts]
    text = f.read_text()
    assert text.count('loan_amount\\":15000.0') == 1
    f.write_text(text.replace('loan_amount\\":15000.0', 'loan_amount\\":1.0'))
    p = cli("verify", "--data", str(store.path))
    assert p.returncode == 1 and "changed after it was recorded" in p.stdout


def test_a_batch_row_with_a_huge_cell_keeps_its_other_cells(store: Store) -> None:
    frame = pd.DataFrame({"amount": [100.0, 15000.0, 300.0], "note": ["a", "n" * 500_000, "c"]})
    first = get_recorder().record_batch("loan", frame, np.array([0, 1, 0]), labels=np.array(["ok", "deny", "ok"]))
    rows = {d.decision_id: d for d in store.decisions()}
    assert len(rows) == 3
    big = [d for d in rows.values() if d.input["amount"] == 15000.0]
    assert len(big) == 1 and big[0].input["note"]["$truncated"] == "str" and big[0].label == "deny"
    for d in rows.values():
        strict(d.attributes[D.INPUT])
        assert len(d.attributes[D.INPUT]) <= 262_144
    p = cli("query", "--data", str(store.path), "--where", "input.amount=15000", "--format", "jsonl")
    assert p.returncode == 0 and [json.loads(x)["decision_id"] for x in p.stdout.splitlines()] == [big[0].decision_id]
    assert first in rows


def test_every_recorded_attribute_is_bounded(store: Store) -> None:
    label = "L" * 20_000_000
    name = "model-" + "n" * 100_000
    did = record_decision(name, {"x": 1}, 1, label=label, reason_codes=["r" * 50_000] * 3000,
                          attributes={"note": "t" * 10_000_000, "obj": {"a": [1, 2]}, "mixed": [1, "a"],
                                      "np": np.int64(3), "none": None, "arr": np.arange(3),
                                      "k" * 1000: "long key"})
    (d,) = store.decisions()
    a = d.attributes
    assert d.decision_id == did and D.ERROR not in a
    assert len(a[D.LABEL]) <= CAP and a[D.LABEL].startswith("LLL")
    assert f"[truncated: 20000000 chars, sha256:{sha256_hex(label)[7:]}]" in a[D.LABEL]
    assert len(a[M.NAME]) <= CAP and a[M.NAME].startswith("model-nnn")
    assert len(a[D.REASON_CODES]) == 1024 and all(len(c) <= 256 for c in a[D.REASON_CODES])
    assert len(a["note"]) <= CAP and "[truncated: 10000000 chars" in a["note"]
    assert (a["obj"], a["mixed"], a["np"], a["arr"]) == ('{"a":[1,2]}', '[1,"a"]', 3, [0, 1, 2])
    assert "none" not in a and not any(len(k) > 256 for k in a)
    cut = set(a[D.TRUNCATED])
    assert {D.LABEL, M.NAME, D.REASON_CODES, "note", f"{D.REASON_CODES}[0]"} <= cut
    (span,) = store.spans()
    assert len(span.name) <= CAP + len("predict ")


def test_a_partly_failed_decision_still_stores_valid_json(store: Store) -> None:
    did = record_decision("m", {"x": 1, "essay": "e" * 20_000}, [2], score="high")  # type: ignore[arg-type]
    (d,) = store.decisions()
    assert d.decision_id == did and "ValueError" in d.attributes[D.ERROR]
    assert strict(d.attributes[D.INPUT])["x"] == 1 and strict(d.attributes[D.OUTPUT]) == [2]
    assert d.attributes[D.TRUNCATED] == ["input.essay"]


def test_a_big_container_that_fails_while_iterated_is_still_bounded() -> None:
    class BadMap(dict):  # type: ignore[type-arg]
        def items(self):  # type: ignore[no-untyped-def]
            raise OSError("boom")

    r = FieldEncoder(CAP)({"m": BadMap(a=1), "big": "b" * 20_000, "n": 5}, "input")
    assert not isinstance(r, str)
    assert strict(r.text)["n"] == 5


def test_past_128_application_attributes_the_rest_are_left_out_and_said(store: Store) -> None:
    record_decision("m", 1, 1, attributes={f"app.k{i:05}": i for i in range(10_000)})
    (d,) = store.decisions()
    assert sum(k.startswith("app.k") for k in d.attributes) == 128 and "attributes" in d.attributes[D.TRUNCATED]
