from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import uuid
from collections import namedtuple

import numpy as np
import pandas as pd

from decisiontrail.encoding import Bounded, canonical_json, encode, sha256_hex, to_jsonable


def loads(value: object) -> object:
    return json.loads(canonical_json(value))


def test_dicts_are_sorted_compact_and_order_independent() -> None:
    assert canonical_json({"b": 1, "a": {"d": 2, "c": 3}}) == '{"a":{"c":3,"d":2},"b":1}'
    assert canonical_json({"x": 1, "y": 2}) == canonical_json({"y": 2, "x": 1})


def test_lists_tuples_and_scalars() -> None:
    assert canonical_json([1, (2, 3), "é", None, True, 1.5]) == '[1,[2,3],"é",null,true,1.5]'


def test_numpy_arrays_and_scalars() -> None:
    assert loads(np.arange(6).reshape(2, 3)) == [[0, 1, 2], [3, 4, 5]]
    assert loads({"i": np.int64(7), "f": np.float32(0.5), "b": np.bool_(True)}) == {"i": 7, "f": 0.5, "b": True}
    assert loads(np.array(["2026-01-02"], dtype="datetime64[D]")) == ["2026-01-02"]
    assert loads(np.array([1.0, np.nan, np.inf])) == [1.0, "NaN", "Infinity"]
    assert loads(np.array([{"a": 1}], dtype=object)) == [{"a": 1}]


def test_pandas_rows_series_frames() -> None:
    df = pd.DataFrame({"income": [52000.0, np.nan], "when": pd.to_datetime(["2026-01-01", None])})
    assert loads(df) == [{"income": 52000.0, "when": "2026-01-01T00:00:00"}, {"income": "NaN", "when": None}]
    assert loads(df.iloc[0]) == {"income": 52000.0, "when": "2026-01-01T00:00:00"}
    assert loads(pd.Series([1, 2], index=["a", "b"])) == {"a": 1, "b": 2}
    assert loads([pd.NA, pd.NaT, pd.Timestamp("2026-11-22T10:00:00Z")]) == [None, None, "2026-11-22T10:00:00+00:00"]


def test_datetimes_decimal_uuid_enum() -> None:
    class Color(enum.Enum):
        RED = "red"

    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert loads([dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.timezone.utc), dt.date(2026, 1, 2), dt.time(3, 4)]) == [
        "2026-11-22T10:00:00+00:00", "2026-01-02", "03:04:00"]
    assert loads(decimal.Decimal("0.1000000000000000055511151231257827")) == "0.1000000000000000055511151231257827"
    assert loads([u, Color.RED]) == [str(u), "red"]


def test_bytes_small_inline_large_as_hash() -> None:
    assert loads(b"\x00\xff") == {"$bytes": "AP8="}
    big = bytes(10_000)
    out = loads(big)
    assert out["$len"] == 10_000 and len(out["$bytes_sha256"]) == 64


def test_nan_and_infinity_anywhere() -> None:
    assert loads([float("nan"), float("inf"), -float("inf"), {"x": float("nan")}]) == [
        "NaN", "Infinity", "-Infinity", {"x": "NaN"}]


def test_sets_sorted_by_canonical_text() -> None:
    assert canonical_json({3, 1, 2}) == "[1,2,3]"
    assert canonical_json({"b", 1, (2, 3)}) == canonical_json({(2, 3), 1, "b"})


def test_non_string_keys() -> None:
    assert loads({1: "a", None: "b", 2.5: "c", False: "d"}) == {"1": "a", "null": "b", "2.5": "c", "false": "d"}
    assert loads({(1, 2): "t"}) == {"[1,2]": "t"}
    assert loads({1: "int", "1x": "str"}) == {"1": "int", "1x": "str"}


def test_cycles_are_marked_not_followed() -> None:
    a: list[object] = [1]
    a.append(a)
    d: dict[str, object] = {"k": 1}
    d["self"] = d
    assert loads(a) == [1, "<cycle>"]
    assert loads(d) == {"k": 1, "self": "<cycle>"}


def test_very_deep_structures_are_cut_at_max_depth() -> None:
    deep: list[object] = []
    cur = deep
    for _ in range(50_000):
        nxt: list[object] = []
        cur.append(nxt)
        cur = nxt
    text = canonical_json(deep, max_depth=8)
    assert text.count("[") == 8 and '"<max depth>"' in text


def test_huge_payload_is_bounded_with_hash_of_the_full_text() -> None:
    payload = {"rows": list(range(100_000)), "n": 7}
    full = canonical_json(payload)
    enc = encode(payload, max_chars=1000)
    stored = json.loads(enc.text)
    assert enc.truncated and len(enc.text) <= 1000 and stored["n"] == 7
    assert stored["rows"]["$truncated"] == "list" and stored["rows"]["len"] == 100_000
    assert enc.full_hash == sha256_hex(full) and enc.cut == ("input.rows",)
    assert not encode({"a": 1}, max_chars=1000).truncated


def test_object_whose_repr_raises() -> None:
    class Evil:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert loads({"x": Evil()}) == {"x": "<Evil>"}


def test_unknown_objects_get_a_bounded_repr() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "T" * 1000

    out = loads(Thing())
    assert isinstance(out, str) and out.startswith("<Thing: TTT") and len(out) < 260


def test_dataclasses_and_namedtuples() -> None:
    @dataclasses.dataclass
    class App:
        income: float
        tags: set[str]

    P = namedtuple("P", "x y")
    assert loads(App(1.0, {"b", "a"})) == {"income": 1.0, "tags": ["a", "b"]}
    assert loads(P(1, 2)) == [1, 2]  # a namedtuple is a tuple: JSON encodes it as a list


def test_deterministic_across_fast_and_careful_paths() -> None:
    value = {"a": [1, 2.5, "x"], "b": {"c": None}}
    with_nan = {"a": [1, 2.5, "x"], "b": {"c": None}, "n": float("nan")}
    assert canonical_json(value) == canonical_json(value)
    assert canonical_json(with_nan) == canonical_json(with_nan)
    assert json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":")) == canonical_json(value)


def test_raising_iterables_do_not_escape() -> None:
    class BadMap(dict):  # type: ignore[type-arg]
        def items(self):  # type: ignore[no-untyped-def]
            raise OSError("boom")

    assert isinstance(canonical_json({"m": BadMap(a=1)}), str)


class _ArraySubclass(np.ndarray):
    """Not exactly numpy.ndarray: encoded by the general path, not the plain-array shortcut."""


def test_plain_arrays_encode_as_the_general_path_does() -> None:
    from decisiontrail.encoding import FieldEncoder

    encoder = FieldEncoder(2000)
    arrays = [np.random.RandomState(0).rand(1, 4), np.arange(3, dtype=np.int8), np.array([1.5, np.nan]),
              np.array(["a", "b"]), np.array([np.datetime64("2020-01-01")]), np.array([{"a": 1}], dtype=object),
              np.zeros((0, 3)), np.array([True, False]), np.array([1 + 2j]), np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])]
    for arr in arrays:
        fast, general = encoder(arr, "input"), encoder(arr.view(_ArraySubclass), "input")
        assert fast == general, arr
    big = encoder(np.zeros((40, 40)), "input")  # more elements than the cap allows: by its structure
    assert isinstance(big, Bounded) and '"$truncated":"ndarray"' in big.text
