"""The native link hash (decisiontrail_native.chain_hash, native/src/chain.rs) against the Python
path, byte for byte: over generated attribute maps of every type the OpenTelemetry SDK allows and the
json module's edge cases, the native hash is the sha256 of the Python canonical text; for what it does
not write it returns None and chain_hash / HashChain / ChainStage give the Python path's hash."""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import math
import random
import struct
from collections.abc import Iterator
from typing import Any

import decisiontrail_native  # scripts/test.sh always installs it: its absence fails, never skips
import pytest
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from decisiontrail import chain as chain_mod
from decisiontrail.chain import ChainStage, HashChain, _events, _link_hash, _payload_text, chain_hash
from decisiontrail.conventions import DECISION_EVENT
from decisiontrail.conventions import DecisionAttributes as D
from decisiontrail.native import use_native

native_hash = decisiontrail_native.chain_hash
TRACE, SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


@pytest.fixture(autouse=True)
def _python_by_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("DECISIONTRAIL_NATIVE", raising=False)
    use_native(False)
    yield
    use_native(None)


def python_hash(name: Any, covered: Any, t: Any, trace_id: Any, span_id: Any) -> str:
    """The definition: sha256 of the canonical text json.dumps writes for the whole payload."""
    payload = {"event": name, "attributes": covered, "time_unix_nano": t, "trace_id": trace_id, "span_id": span_id}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    assert text == _payload_text(name, covered, t, trace_id, span_id)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def assert_same(name: Any, attrs: dict[str, Any], t: Any = 1_700_000_000_123_456_789,
                trace_id: Any = TRACE, span_id: Any = SPAN) -> None:
    got = native_hash(name, attrs, t, trace_id, span_id, ())
    assert got is not None, f"native fell back on {attrs!r}"
    assert got == python_hash(name, attrs, t, trace_id, span_id), repr(attrs)


# -- generated attribute maps ---------------------------------------------------------------------
ALPHABET = ([chr(c) for c in range(0x20)] + ['"', "\\", "/", "\x7f", "\x80", "\xa0", "é", "ß", "\u2028", "\u2029",
            "\ufeff", "\uffff", "€", "中", "😀", "\U0010ffff", " ", "a", "Z", "0", "{", "}", ":", ","]
            + [chr(c) for c in range(0x21, 0x7f)] * 2)


def gen_str(rng: random.Random) -> str:
    n = rng.choice((0, 1, 2, 7, 8, 9, 15, 16, 17, 40, 100))
    if rng.random() < 0.3:  # long clean runs with an escape somewhere (the eight-byte scan)
        s = "x" * n
        i = rng.randrange(n + 1)
        return s[:i] + rng.choice(('"', "\\", "\n", "\x00", "\x1f", "é", "😀")) + s[i:]
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def gen_float(rng: random.Random) -> float:
    r = rng.random()
    if r < 0.3:
        return rng.choice((0.0, -0.0, 1.0, -1.0, 0.1, 0.81, 1e16, 1e15, 9007199254740993.0, 1e-7, 1e-5, 1e-4,
                           5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 123456789.125,
                           math.nan, math.inf, -math.inf, math.pi, 1 / 3, 2.5, 1e22, 1e23))
    if r < 0.7:  # any bit pattern: subnormals, huge, tiny, NaN payloads
        return float(struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0])
    return rng.uniform(-1e6, 1e6)


def gen_int(rng: random.Random) -> int:
    return rng.choice((0, 1, -1, 7, -7, 10, 52000, I64_MAX, I64_MIN, I64_MAX - 1, I64_MIN + 1, 1 << 32, -(1 << 53),
                       rng.randint(I64_MIN, I64_MAX), rng.randint(-1000, 1000)))


SCALARS = {"str": gen_str, "bool": lambda rng: rng.random() < 0.5, "int": gen_int, "float": gen_float}


def gen_value(rng: random.Random) -> Any:
    kind = rng.choice(("str", "bool", "int", "float", "seq", "seq"))
    if kind != "seq":
        return SCALARS[kind](rng)
    make = SCALARS[rng.choice(tuple(SCALARS))]
    items = [make(rng) for _ in range(rng.choice((0, 1, 3, 10)))]
    if items and rng.random() < 0.2:
        items[rng.randrange(len(items))] = None  # the SDK keeps None in sequences
    return tuple(items) if rng.random() < 0.6 else items


def gen_attrs(rng: random.Random) -> dict[str, Any]:
    return {gen_str(rng) if rng.random() < 0.5 else f"decision.k{rng.randrange(50)}": gen_value(rng)
            for _ in range(rng.choice((0, 1, 5, 12, 30)))}


def test_generated_attribute_maps_hash_byte_for_byte_as_the_python_text() -> None:
    rng = random.Random(13)
    for _ in range(3000):
        assert_same(rng.choice((DECISION_EVENT, gen_str(rng))), gen_attrs(rng),
                    rng.choice((0, 1, 1_700_000_000_123_456_789, I64_MAX, -5)),
                    rng.choice((TRACE, "", gen_str(rng))), rng.choice((SPAN, gen_str(rng))))


def test_json_edge_cases_one_by_one() -> None:
    edge: list[Any] = ["", '"', "\\", "\n\r\t\b\f", "".join(map(chr, range(0x20))), "\x7f", "\u2028\u2029",
                       "é中😀\U0010ffff", "\ufeff", "</script>", "a" * 1000 + "\x01", "abcdefgh\\ijklmnop\"qrstuvw\x1fyz",
                       True, False, 0, -0, 1, -1, I64_MAX, I64_MIN,
                       0.0, -0.0, 1.0, 1e16, 1e-7, 5e-324, 1e308, 0.1 + 0.2, math.nan, math.inf, -math.inf,
                       (), [], ("a", "b"), [1, 2], (True, False), (1.5, math.nan, -0.0), (None,), ["é", None, "\n"],
                       ((1, 2), [3]), [[[]]]]
    for v in edge:
        assert_same(DECISION_EVENT, {"k": v})
        assert_same(DECISION_EVENT, {"k": v, "\n key": v, "é": 1, "": 2, "😀": 3, "\uffff": 4, "Z": 5})


def test_keys_sort_by_code_point_as_python_sorts_str() -> None:
    keys = ["b", "a", "B", "", "é", "e\u0301", "\uffff", "😀", "\U0010ffff", "a\x00", "a ", "aa", "\x7f", "\u2028"]
    attrs = {k: i for i, k in enumerate(keys)}
    assert_same(DECISION_EVENT, attrs)
    assert_same(DECISION_EVENT, dict(reversed(list(attrs.items()))))


def test_the_leave_out_keys_are_not_hashed() -> None:
    base = {"model.name": "m", D.CHAIN_SEQ: 3, D.INPUT_HASH: "sha256:00"}
    full = {**base, D.INPUT: '{"x":1}', D.CHAIN_HASH: "h"}
    want = python_hash(DECISION_EVENT, base, 5, TRACE, SPAN)
    assert native_hash(DECISION_EVENT, full, 5, TRACE, SPAN, (D.CHAIN_HASH, D.INPUT)) == want
    assert native_hash(DECISION_EVENT, base, 5, TRACE, SPAN, (D.CHAIN_HASH, D.INPUT)) == want  # absent: fine
    assert native_hash(DECISION_EVENT, full, 5, TRACE, SPAN, (D.CHAIN_HASH,)) == python_hash(
        DECISION_EVENT, {**base, D.INPUT: '{"x":1}'}, 5, TRACE, SPAN)


class Key(str):
    pass


class Number(enum.IntEnum):
    ONE = 1


class Real(float):
    def __repr__(self) -> str:
        return "not json's text"


class Items(list):  # type: ignore[type-arg]
    pass


FALLBACKS: list[tuple[str, Any, Any, Any, Any, Any]] = [
    # (why, name, attributes, time, trace_id, leave_out)
    ("an int key", DECISION_EVENT, {1: "x"}, 5, TRACE, ()),
    ("a bool key", DECISION_EVENT, {True: "x"}, 5, TRACE, ()),
    ("a str subclass key", DECISION_EVENT, {Key("k"): "x"}, 5, TRACE, ()),
    ("a str subclass value", DECISION_EVENT, {"k": Key("x")}, 5, TRACE, ()),
    ("a lone surrogate value", DECISION_EVENT, {"k": "a\ud800b"}, 5, TRACE, ()),
    ("a lone surrogate key", DECISION_EVENT, {"\udfff": 1}, 5, TRACE, ()),
    ("a lone surrogate in a list", DECISION_EVENT, {"k": ["ok", "\ud83d"]}, 5, TRACE, ()),
    ("a lone surrogate name", "\ud800", {}, 5, TRACE, ()),
    ("a lone surrogate trace id", DECISION_EVENT, {}, 5, "\ud800", ()),
    ("a dict value", DECISION_EVENT, {"k": {"a": 1}}, 5, TRACE, ()),
    ("an empty dict value", DECISION_EVENT, {"k": {}}, 5, TRACE, ()),
    ("an int beyond i64", DECISION_EVENT, {"k": I64_MAX + 1}, 5, TRACE, ()),
    ("an int below i64", DECISION_EVENT, {"k": I64_MIN - 1}, 5, TRACE, ()),
    ("a big int in a list", DECISION_EVENT, {"k": [1, 1 << 70]}, 5, TRACE, ()),
    ("an IntEnum", DECISION_EVENT, {"k": Number.ONE}, 5, TRACE, ()),
    ("a float subclass", DECISION_EVENT, {"k": Real(1.5)}, 5, TRACE, ()),
    ("a list subclass", DECISION_EVENT, {"k": Items([1])}, 5, TRACE, ()),
    ("lists nested too deep", DECISION_EVENT, {"k": [[[[[[[[[1]]]]]]]]]}, 5, TRACE, ()),
    ("a bool time", DECISION_EVENT, {}, True, TRACE, ()),
    ("a float time", DECISION_EVENT, {}, 1.5, TRACE, ()),
    ("a time beyond i64", DECISION_EVENT, {}, 1 << 64, TRACE, ()),
    ("a non-str trace id", DECISION_EVENT, {}, 5, None, ()),
    ("a str subclass name", Key(DECISION_EVENT), {}, 5, TRACE, ()),
]


@pytest.mark.parametrize("why,name,attrs,t,trace_id,leave_out", FALLBACKS, ids=[f[0] for f in FALLBACKS])
def test_what_it_does_not_write_returns_none_and_chain_hash_takes_the_python_path(
        why: str, name: Any, attrs: Any, t: Any, trace_id: Any, leave_out: Any) -> None:
    assert native_hash(name, attrs, t, trace_id, SPAN, leave_out) is None, why
    want = python_hash(name, attrs, t, trace_id, SPAN)
    assert _link_hash(name, attrs, t, trace_id, SPAN, None) == want
    assert _link_hash(name, attrs, t, trace_id, SPAN, decisiontrail_native) == want
    use_native(True)
    assert chain_hash(name, attrs, t, trace_id, SPAN) == want


def test_unwritable_values_raise_as_the_python_path_does() -> None:
    for bad in ({"k": {1, 2}}, {"k": b"bytes"}, {"k": object()}):
        assert native_hash(DECISION_EVENT, bad, 5, TRACE, SPAN, ()) is None
        with pytest.raises(TypeError):
            _link_hash(DECISION_EVENT, bad, 5, TRACE, SPAN, decisiontrail_native)


def test_bad_arguments_return_none_rather_than_raise() -> None:
    for args in ((DECISION_EVENT, [("k", 1)], 5, TRACE, SPAN, ()),  # not a dict
                 (DECISION_EVENT, BoundedAttributes(attributes={"k": 1}), 5, TRACE, SPAN, ()),
                 (DECISION_EVENT, {}, 5, TRACE, SPAN, [D.CHAIN_HASH]),  # leave_out not a tuple
                 (DECISION_EVENT, {}, 5, TRACE, SPAN, (1,)),
                 (DECISION_EVENT, {}, 5, TRACE, SPAN, ("a", "b", "c", "d", "e"))):
        assert native_hash(*args) is None


def test_chain_hash_with_the_accelerator_on_is_the_python_hash() -> None:
    """The public chain_hash (what verification calls): the input and the link's own hash left out
    unless the input was cut, BoundedAttributes and plain dicts alike."""
    rng = random.Random(7)
    cases: list[Any] = []
    for i in range(300):
        attrs = gen_attrs(rng)
        attrs[D.INPUT] = gen_str(rng)
        if i % 3 == 0:
            attrs[D.CHAIN_HASH] = "ab" * 32
        if i % 4 == 0:
            attrs[D.TRUNCATED] = rng.choice((("input.x",), ("output",), ("input",), ()))
        cases.append(attrs if i % 5 else BoundedAttributes(attributes=attrs, immutable=False))
    want = [chain_hash(DECISION_EVENT, a, 9, TRACE, SPAN) for a in cases]
    use_native(True)
    calls: list[Any] = []
    real = decisiontrail_native.chain_hash

    class Spy:
        def chain_hash(self, *args: Any) -> Any:
            calls.append(h := real(*args))
            return h
    for a, w in zip(cases, want):
        assert chain_hash(DECISION_EVENT, a, 9, TRACE, SPAN) == w
        assert _link_hash(DECISION_EVENT, a, 9, TRACE, SPAN, Spy()) == w
    assert len(calls) == len(cases) and all(h is not None for h in calls)  # none fell back


def test_a_failing_accelerator_is_logged_once_and_the_python_hash_used(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def chain_hash(self, *args: Any) -> str:
            raise RuntimeError("boom")
    monkeypatch.setattr(chain_mod, "_native_failed", [False])
    attrs = {"k": 1, D.INPUT: "x"}
    with caplog.at_level(logging.WARNING, logger="decisiontrail.chain"):
        for _ in range(3):
            assert _link_hash(DECISION_EVENT, attrs, 5, TRACE, SPAN, Broken()) == python_hash(
                DECISION_EVENT, {"k": 1}, 5, TRACE, SPAN)
    assert sum("native chain hash failed" in r.getMessage() for r in caplog.records) == 1


def audit_spans(n: int) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    rng = random.Random(3)
    for i in range(n):
        with tracer.start_as_current_span("decide") as span:
            attrs = gen_attrs(rng)
            attrs.update({D.INPUT: json.dumps({"x": i, "s": gen_str(rng)}), "model.name": "m", D.SCORE: 0.5 + i})
            span.add_event(DECISION_EVENT, attrs)
    return list(memory.get_finished_spans())


def test_hash_chain_and_chain_stage_link_the_same_with_the_accelerator_on() -> None:
    spans = audit_spans(40)
    py = ChainStage(HashChain("chain-1"))(spans)
    use_native(True)
    chain = HashChain("chain-1")
    assert chain._native is decisiontrail_native
    nat = ChainStage(chain)(spans)
    for a, b in zip(py, nat):
        (ea,), (eb,) = list(_events(a)), list(_events(b))
        assert dict(ea.attributes or {}) == dict(eb.attributes or {})
        assert (eb.attributes or {})[D.CHAIN_HASH] == python_hash(
            DECISION_EVENT, {k: v for k, v in (eb.attributes or {}).items() if k not in (D.CHAIN_HASH, D.INPUT)},
            eb.timestamp, format(b.context.trace_id, "032x"), format(b.context.span_id, "016x"))
    assert chain.head == (list(_events(py[-1]))[0].attributes or {})[D.CHAIN_HASH]
