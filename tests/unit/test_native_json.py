"""The native twin of the OTLP JSON span encoder (native/src/json.rs): character for character the
Python path's text (``JsonEncoder.span_text``) and ``json.dumps`` of otlpjson's mapping, over
generated spans of every shape; ``None`` (and so the Python path's text) for what it does not handle."""

from __future__ import annotations

import enum
import json
import json.encoder
import math
import random
import struct
import threading
import sys
from collections import OrderedDict, deque
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import decisiontrail_native  # scripts/test.sh installs it: its absence fails here, never skips
import pytest
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

import decisiontrail
from decisiontrail.exporters import json_encoder, otlpjson
from decisiontrail.exporters.json_encoder import JsonEncoder
from decisiontrail.exporters.otlpjson import spans_from_otlp_json, spans_to_otlp_json, spans_to_otlp_mapping
from decisiontrail.native import use_native
from decisiontrail.recorder import set_recorder

native_text = decisiontrail_native.json_span_text
native_bytes = decisiontrail_native.json_span_bytes
PYTHON = {wf: JsonEncoder(wire_flags=wf, native=False) for wf in (False, True)}
RES = Resource({"service.name": "loans"})
SCOPE = InstrumentationScope("decisiontrail", "0.1")


@pytest.fixture(autouse=True)
def _reset(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("DECISIONTRAIL_NATIVE", raising=False)
    yield
    use_native(None)
    set_recorder(None)


def dumps(spans: list[ReadableSpan]) -> str:
    return json.dumps(spans_to_otlp_mapping(spans), separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def assert_native_is_python(s: ReadableSpan) -> None:
    for wf in (False, True):
        expected = PYTHON[wf].span_text(s)
        assert native_text(s, wf) == expected
        assert native_bytes(s, wf) == expected.encode("utf-8")


# -- values of every type the SDK allows, and a few more ----------------------------------------

SPECIAL_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 0.81, 1 / 3, 1e16, 1e15, 9999999999999998.0, 1e-7, 1e-4, 1e-5,
                  5e-324, -5e-324, 2.2250738585072014e-308, sys.float_info.max, -sys.float_info.max, 1e22, 1e23,
                  2.0 ** 52, 2.0 ** 52 + 1, 2.0 ** 53 - 1, 2.0 ** 53, -(2.0 ** 53), 2.0 ** 53 + 2, 2.0 ** 63,
                  2.0 ** 64, 123456789.0, 52000.0, -7.0, 562949953421312.25, 562949953421312.75,
                  math.nan, math.inf, -math.inf]
SPECIAL_INTS = [0, 1, -1, 7, 10, 99, 100, -100, 2 ** 31, 2 ** 53 + 1, 2 ** 63 - 1, -(2 ** 63), 10 ** 18, -(10 ** 18)]
SPECIAL_STRINGS = ["", "a", "credit", 'say "hi"', "back\\slash", "\n\r\t\b\f", "".join(map(chr, range(32))),
                   "\x7f", "Zoë ✓", "\u2028\u2029", "\ufeff", "🤖 emoji 𝄞", "日本語", "x" * 300, "é" * 300,
                   '{"debt_ratio":0.31,"income":52000,"years":7}', "</script>", "\x00", "tab\tend"]


def rand_float(r: random.Random) -> float:
    if r.random() < 0.3:
        return r.choice(SPECIAL_FLOATS)
    if r.random() < 0.3:
        return float(r.randint(-10 ** 6, 10 ** 6))
    return struct.unpack("<d", r.getrandbits(64).to_bytes(8, "little"))[0]  # any double, NaNs included


def rand_int(r: random.Random) -> int:
    return r.choice(SPECIAL_INTS) if r.random() < 0.5 else r.randint(-(2 ** 63), 2 ** 63 - 1)


def rand_str(r: random.Random) -> str:
    if r.random() < 0.5:
        return r.choice(SPECIAL_STRINGS)
    chars = []
    for _ in range(r.randint(0, 40)):
        c = r.choice([r.randint(0, 0x7f), r.randint(0x80, 0xd7ff), r.randint(0xe000, 0x10ffff), 0x2028, ord('"')])
        chars.append(chr(c))
    return "".join(chars)


def rand_scalar(r: random.Random, kind: str) -> Any:
    if kind == "str":
        return rand_str(r)
    if kind == "bool":
        return r.random() < 0.5
    if kind == "int":
        return rand_int(r)
    if kind == "float":
        return rand_float(r)
    return r.randbytes(r.randint(0, 10))


def rand_value(r: random.Random, depth: int = 0) -> Any:
    kind = r.choice(["str", "str", "bool", "int", "int", "float", "float", "bytes", "seq", "seq", "dict"])
    if kind == "seq":  # homogeneous, as the SDK keeps them; a list now and then (extended attributes)
        inner = r.choice(["str", "bool", "int", "float", "bytes"])
        items = [rand_scalar(r, inner) for _ in range(r.randint(0, 5))]
        return tuple(items) if r.random() < 0.7 else items
    if kind == "dict":
        if depth > 2:
            return {}
        return {rand_str(r): rand_value(r, depth + 1) for _ in range(r.randint(0, 3))}
    return rand_scalar(r, kind)


def rand_attrs(r: random.Random) -> Any:
    attrs = {rand_str(r) or "k": rand_value(r) for _ in range(r.randint(0, 8))}
    shape = r.choice(["dict", "dict", "bounded", "none", "empty"])
    if shape == "bounded":  # the encoders read its _dict: filled directly, values the SDK's cleaning would drop too
        bounded = BoundedAttributes(r.choice([None, 2, 100]), immutable=r.random() < 0.5)
        bounded._dict = attrs
        return bounded
    return {"none": None, "empty": {}}.get(shape, attrs)


def rand_ctx(r: random.Random, remote: bool = False) -> SpanContext:
    state = TraceState([("vendor", "v1"), ("b", "2")]) if r.random() < 0.2 else None
    return SpanContext(r.getrandbits(128) or 1, r.getrandbits(64) or 1, remote, TraceFlags(r.choice([0, 1])), state)


def rand_seq(r: random.Random, items: list[Any]) -> Any:
    shape = r.choice(["tuple", "list", "bounded"])
    if shape == "bounded":
        out: BoundedList[Any] = BoundedList(r.choice([None, 2]))
        out.extend(items)  # past maxlen: dropped > 0
        return out
    return tuple(items) if shape == "tuple" else items


def rand_span(r: random.Random) -> ReadableSpan:
    parent = None if r.random() < 0.4 else rand_ctx(r, remote=r.random() < 0.5)
    status = r.choice([Status(), Status(StatusCode.OK), Status(StatusCode.ERROR), Status(StatusCode.ERROR, rand_str(r))])
    events = rand_seq(r, [Event(rand_str(r), rand_attrs(r), r.randint(0, 2 ** 63 - 1)) for _ in range(r.randint(0, 4))])
    links = rand_seq(r, [Link(rand_ctx(r), rand_attrs(r)) for _ in range(r.randint(0, 3))])
    return ReadableSpan(rand_str(r), rand_ctx(r), parent, RES, rand_attrs(r), events, links,
                        r.choice(list(SpanKind)), status=status,
                        start_time=r.choice([None, 0, r.randint(1, 2 ** 63 - 1)]),
                        end_time=r.choice([None, 0, r.randint(1, 2 ** 63 - 1)]), instrumentation_scope=SCOPE)


# -- the same text ---------------------------------------------------------------------------------

def test_the_python_path_escapes_with_the_c_encoder() -> None:
    # the native escaping mirrors c_encode_basestring (not ensure_ascii): keep the reference pinned
    assert json.encoder.c_encode_basestring is not None
    assert json_encoder._enc is json.encoder.c_encode_basestring


def test_generated_spans_of_every_shape_are_the_python_text() -> None:
    r = random.Random(13)
    spans = [rand_span(r) for _ in range(600)]
    for s in spans:
        assert_native_is_python(s)
    native = JsonEncoder(native=True)
    assert native.native and native.text(spans) == dumps(spans) == PYTHON[False].text(spans)
    assert native.text(spans, paced=True) == dumps(spans)


def test_decision_spans_from_the_recorder_are_the_python_text() -> None:
    memory = InMemorySpanExporter()
    cfg = decisiontrail.configure(exporter=memory, service_name="njson", set_global=False, spool_dir=False)
    tracer = cfg.tracer_provider.get_tracer("njson-test", "1.0")
    try:
        for i in range(20):
            decisiontrail.record_decision("credit", {"income": 52000 + i, "debt_ratio": 0.31, "name": "Zoë \u2028"},
                                          {"p": 0.81}, label="approve", score=i / 7, reason_codes=["R1", "R2"])
        with tracer.start_as_current_span("POST /score", kind=SpanKind.SERVER, attributes={"ratio": 0.5}) as span:
            for j in range(3):
                decisiontrail.record_decision("fraud", {"tx": j, "blob": "x\n" * 500}, -1.5, label=None,
                                              explanation={"f": [1, 2.5]})
            span.set_status(Status(StatusCode.ERROR, "boom"))
        decisiontrail.recorder.get_recorder().record_batch("batch", [[1.0, 2.0]] * 50, [0, 1] * 25)
        assert cfg.force_flush()
    finally:
        cfg.shutdown()
    spans = list(memory.get_finished_spans())
    assert len(spans) >= 22
    for s in spans:
        assert_native_is_python(s)
    assert JsonEncoder(native=True).text(spans) == dumps(spans)


def test_every_character_escapes_as_c_encode_basestring() -> None:
    every = "".join(chr(c) for c in range(0x110000) if not 0xd800 <= c <= 0xdfff)
    s = ReadableSpan(every, rand_ctx(random.Random(1)), attributes={every: every, "t": (every, "\x1f")})
    assert_native_is_python(s)
    # the control characters but \b \t \n \f \r as \u00xx, in the name, key, value and tuple, and "\x1f"
    assert native_text(s, False).count("\\u00") == 4 * (32 - 5) + 1


def test_floats_are_float_repr() -> None:
    r = random.Random(7)
    floats = tuple(SPECIAL_FLOATS + [rand_float(r) for _ in range(20_000)]
                   + [float(r.randint(-(2 ** 53), 2 ** 53)) for _ in range(5_000)])
    s = ReadableSpan("f", rand_ctx(r), attributes={"floats": floats, "one": 0.81, "neg0": -0.0})
    assert_native_is_python(s)
    text = native_text(s, False)
    assert '"doubleValue":-0.0}' in text and '"doubleValue":1e+16}' in text and '"doubleValue":5e-324}' in text
    assert '"doubleValue":NaN}' in text and '"doubleValue":-Infinity}' in text


def test_ints_bools_bytes_and_nesting() -> None:
    r = random.Random(3)
    attrs = {"ints": tuple(SPECIAL_INTS), "bools": (True, False), "b": True, "z": 0, "min": -(2 ** 63),
             "max": 2 ** 63 - 1, "bytes": tuple(bytes(range(n)) for n in range(8)), "raw": b"\x00\xff",
             "nested": {"a": [1, {"b": (2.5, "x")}], "": {}}, "lists": [[1, 2], [], ["a"]]}
    s = ReadableSpan("v", rand_ctx(r), attributes=attrs)
    assert_native_is_python(s)
    text = native_text(s, False)
    assert '{"key":"min","value":{"intValue":"-9223372036854775808"}}' in text and '"bytesValue":"AP8="' in text


# -- what it does not handle: None, and the encoder writes the Python path's text -------------------

class Tag(str):
    pass


class Level(enum.IntEnum):
    HIGH = 3


class Weird:
    def __str__(self) -> str:
        return "weird ✓"


def _deep(n: int) -> Any:
    v: Any = 1
    for _ in range(n):
        v = [v]
    return v


def _fallbacks() -> list[ReadableSpan]:
    ctx = SpanContext(5, 6, False, TraceFlags(1))
    attrs: list[Any] = [
        {"k": Tag("v")}, {Tag("k"): "v"}, {"k": "lone \ud800"}, {"lone \udfff": 1}, {"k": 2 ** 63},
        {"k": -(2 ** 63) - 1}, {"k": (1, 2 ** 70)}, {"k": Level.HIGH}, {"k": (Level.HIGH,)}, {"k": bytearray(b"ab")},
        {"k": _deep(40)}, {"k": MappingProxyType({"a": 1})}, {"k": Weird()}, {"k": None}, {"k": {"a": Weird()}},
        OrderedDict(a=1), MappingProxyType({"a": 1}), {"k": ("a", "\udc00")},
    ]
    out = [ReadableSpan("s", ctx, attributes=a) for a in attrs]
    out += [
        ReadableSpan("lone \ud800", ctx),
        ReadableSpan(Tag("name"), ctx),
        ReadableSpan("s", ctx, start_time=1.5),  # type: ignore[arg-type]
        ReadableSpan("s", ctx, events=[Event("e", {}, 1.5)]),  # type: ignore[arg-type]
        ReadableSpan("s", ctx, events=[Event("lone \ud800", {}, 1)]),
        ReadableSpan("s", ctx, events=[Event("e", OrderedDict(a=1), 1)]),
        ReadableSpan("s", ctx, events=deque([Event("e", {}, 1)])),  # type: ignore[arg-type]
        ReadableSpan("s", ctx, links=[Link(SpanContext(5, 2 ** 64, False), {})]),
        ReadableSpan("s", SpanContext(2 ** 128, 6, False)),
        ReadableSpan("s", ctx, status=Status(StatusCode.ERROR, Tag("boom"))),
    ]
    return out


@pytest.mark.parametrize("span", _fallbacks(), ids=lambda s: repr(s._name)[:12] + repr(s._attributes)[:30])
def test_what_it_does_not_handle_takes_the_python_path(span: ReadableSpan) -> None:
    assert native_text(span, False) is None and native_text(span, True) is None
    assert native_bytes(span, False) is None
    for wf in (False, True):
        enc = JsonEncoder(wire_flags=wf, native=True)
        assert enc.span_text(span) == PYTHON[wf].span_text(span)
        assert enc.span(span) == PYTHON[wf].span(span)


def test_what_python_cannot_encode_fails_the_same_way() -> None:
    s = ReadableSpan("s", SpanContext(5, 6, False), attributes={1: "non-str key"})  # type: ignore[dict-item]
    assert native_text(s, False) is None
    with pytest.raises(TypeError):
        PYTHON[False].span_text(s)
    with pytest.raises(TypeError):
        JsonEncoder(native=True).span_text(s)


def test_a_none_from_the_accelerator_always_takes_the_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []

    def declines(span: ReadableSpan, wire_flags: bool) -> None:
        calls.append(wire_flags)
        return None

    monkeypatch.setattr(decisiontrail_native, "json_span_text", declines)
    monkeypatch.setattr(decisiontrail_native, "json_span_bytes", declines)
    spans = [rand_span(random.Random(i)) for i in range(20)]
    enc = JsonEncoder(wire_flags=True, native=True)
    assert [enc.span(s) for s in spans] == [PYTHON[True].span(s) for s in spans]
    assert enc.text(spans) == PYTHON[True].text(spans) and calls and all(calls)


# -- selection: the module-level writer (files, spool) and encoders made with it on or off ----------

def test_encoders_take_the_accelerator_only_when_it_is_on() -> None:
    assert use_native(False) is None
    off = JsonEncoder()
    assert not off.native and "span_text" not in vars(off) and "span" not in vars(off)  # the methods, as before
    assert use_native(True) is decisiontrail_native
    on = JsonEncoder()
    assert on.native and JsonEncoder(native=False).native is False
    spans = [rand_span(random.Random(i)) for i in range(30)]
    assert spans_to_otlp_json(spans, paced=True) == dumps(spans)
    assert otlpjson._native_encoder and otlpjson._native_encoder[0].native
    assert len(spans_from_otlp_json(spans_to_otlp_json(spans))) == len(spans)  # it still reads back


# -- threads and re-entrant calls (the text is written into a buffer kept per thread) ---------------

def test_threads_encoding_at_once_each_get_their_own_text() -> None:
    spans = [rand_span(random.Random(100 + i)) for i in range(200)]
    expected = [PYTHON[False].span_text(s) for s in spans]
    results: dict[int, list[str | None]] = {}

    def work(k: int) -> None:
        results[k] = [native_text(s, False) for s in spans for _ in range(3)][::3]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[k] == expected for k in range(4))


def test_a_call_back_in_from_a_property_gets_its_own_buffer() -> None:
    other = rand_span(random.Random(5))
    seen: list[str | None] = []

    class CallsBack(Event):
        @property  # type: ignore[override]
        def _attributes(self) -> Any:
            seen.append(native_text(other, False))  # while the outer call is writing
            return self._attrs

        @_attributes.setter
        def _attributes(self, value: Any) -> None:
            self._attrs = value

    s = ReadableSpan("outer", SpanContext(5, 6, False), attributes={"x": "y" * 5000},
                     events=(CallsBack("e", {"a": "b"}, 1),))
    assert native_text(s, False) == PYTHON[False].span_text(s)
    assert seen and seen[0] == PYTHON[False].span_text(other)
