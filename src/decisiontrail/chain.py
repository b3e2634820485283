"""Tamper evidence: every audit record of a process is a link in a hash chain, signed at checkpoints.

Each audit event (a name in ``conventions.AUDIT_EVENTS``: decisions, checkpoints, and the lifecycle
records) carries ``decision.chain.id`` (one per recording process), ``decision.chain.seq`` (1, 2,
3 … without gaps), ``decision.chain.prev`` (the previous link's hash) and ``decision.chain.hash`` =
sha256 of the canonical JSON of the event's name, its other attributes, its timestamp, and the trace
id and span id it was recorded on (``decision.input`` is covered through ``decision.input.hash``).
Editing, deleting, inserting, reordering or moving a stored record to another request breaks the
chain there.

The hash uses no secret, so a writer of the files could recompute every later link. What stops that
is the signed checkpoint (checkpoints.py): every N decisions or T seconds, and at shutdown, the chain
stage signs the chain head, as an event of the chain itself. The checkpoint travels with the
decisions (spool, replay, collector) and, with an anchor store, is also copied outside the audit
store (anchors.py). ``verification.py`` checks it all; docs/trust.md says what is and is not proven.

The link hash has a native twin, ``decisiontrail_native.chain_hash`` (native/src/chain.rs), used when
the optional accelerator is on (native.py): the same canonical text hashed without building it in
Python; for any value it does not write it returns None and the Python text below is hashed instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from json.encoder import c_make_encoder, c_encode_basestring  # type: ignore[attr-defined]
from typing import Any, Iterable, Mapping

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from .checkpoints import Checkpointer
from .conventions import AUDIT_EVENTS, CHECKPOINT_EVENT, CHECKPOINT_SPAN, DECISION_EVENT, SCOPE_NAME
from .conventions import CheckpointAttributes as C
from .conventions import DecisionAttributes as D
from .conventions import SpanAttributes as S
from .encoding import is_cut, sha256_hex
from .threads import start_thread
from .ids import new_decision_id
from .native import accelerator
from .version import __version__

__all__ = ["HashChain", "ChainStage", "chain_hash", "verify"]

_log = logging.getLogger(__name__)
_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _fail(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


# The same text as _dumps without its Python-level wrapper: the C encoder called directly (attribute
# values are never cyclic: no circular-reference markers). tests/unit/test_chain_fast.py compares both.
_c_dumps = c_make_encoder(None, _fail, c_encode_basestring, None, ":", ",", True, False, True) \
    if c_make_encoder is not None and c_encode_basestring is not None else None


def _canonical(payload: dict[str, Any]) -> str:
    if _c_dumps is None:  # pragma: no cover - CPython has the C encoder
        return _dumps(payload)
    return "".join(_c_dumps(payload, 0))
_enc = c_encode_basestring
_CHAIN_ID, _CHAIN_SEQ, _CHAIN_PREV, _CHAIN_HASH = D.CHAIN_ID, D.CHAIN_SEQ, D.CHAIN_PREV, D.CHAIN_HASH
_ids = RandomIdGenerator()
_SCOPE = InstrumentationScope(SCOPE_NAME, __version__)


def chain_hash(name: str, attributes: Mapping[str, Any], time_unix_nano: int, trace_id: str, span_id: str) -> str:
    """The link hash of one audit event; ``trace_id`` / ``span_id`` in lower-case hex, as stored."""
    return _link_hash(name, attributes, time_unix_nano, trace_id, span_id, accelerator())


# The keys the native twin leaves out of the attributes: the link's own hash, and the input unless cut.
_LEAVE_HASH, _LEAVE_HASH_AND_INPUT = (D.CHAIN_HASH,), (D.CHAIN_HASH, D.INPUT)
_native_failed = [False]


def _link_hash(name: str, attributes: Mapping[str, Any], time_unix_nano: int, trace_id: str, span_id: str,
               nat: Any) -> str:
    """chain_hash with the accelerator module (or None) given: the native twin's hash when it writes
    every value, else the Python text's."""
    # A whole input is covered through its hash; a bounded summary is not what the hash is of, so
    # the summary itself is chained.
    truncated = attributes.get(D.TRUNCATED)
    cut = bool(truncated) and is_cut(truncated, "input")
    if nat is not None:
        try:
            h: str | None = nat.chain_hash(name, attributes if type(attributes) is dict else dict(attributes),
                                           time_unix_nano, trace_id, span_id,
                                           _LEAVE_HASH if cut else _LEAVE_HASH_AND_INPUT)
        except Exception as exc:  # pragma: no cover - it returns None rather than raise
            if not _native_failed[0]:
                _native_failed[0] = True
                _log.warning("decisiontrail: the native chain hash failed (%r); using the Python path", exc)
            h = None
        if h is not None:
            return h
    if type(attributes) is dict and D.CHAIN_HASH not in attributes and (cut or D.INPUT not in attributes):
        covered = attributes  # nothing to leave out: no copy
    else:
        covered = dict(attributes)  # the order of the keys does not matter: the text is sorted
        covered.pop(D.CHAIN_HASH, None)
        if not cut:
            covered.pop(D.INPUT, None)
    return hashlib.sha256(_payload_text(name, covered, time_unix_nano, trace_id, span_id)
                          .encode("utf-8", "surrogatepass")).hexdigest()


def _payload_text(name: str, covered: dict[str, Any], time_unix_nano: int, trace_id: str, span_id: str) -> str:
    """The canonical JSON of the hashed payload ``{"event", "attributes", "time_unix_nano", "trace_id",
    "span_id"}``: its five keys written in their sorted order around the attributes' own sorted text
    (no payload dict, no sort of its keys); any other type than the usual ones takes the general path.
    tests/unit/test_chain_stage.py compares both."""
    if (_c_dumps is None or type(time_unix_nano) is not int or type(name) is not str
            or type(trace_id) is not str or type(span_id) is not str):
        return _canonical({"event": name, "attributes": covered, "time_unix_nano": time_unix_nano,
                           "trace_id": trace_id, "span_id": span_id})
    return "".join(('{"attributes":', *_c_dumps(covered, 0), ',"event":', _enc(name), ',"span_id":', _enc(span_id),
                    ',"time_unix_nano":', int.__repr__(time_unix_nano), ',"trace_id":', _enc(trace_id), "}"))


class HashChain:
    """One chain; :meth:`link` gives every audit event its place (thread-safe)."""

    def __init__(self, chain_id: str | None = None) -> None:
        self.chain_id = chain_id or new_decision_id()
        self.seq = 0
        self.head = ""
        self._lock = threading.Lock()
        self._native = accelerator()  # looked up once: configure() selects it before the chain is made

    def link(self, name: str, attributes: dict[str, Any], time_unix_nano: int, trace_id: str, span_id: str) -> None:
        """Add the chain attributes to ``attributes`` (in place)."""
        attributes[_CHAIN_ID] = self.chain_id
        with self._lock:
            seq = self.seq + 1
            attributes[_CHAIN_SEQ] = seq
            attributes[_CHAIN_PREV] = self.head
            h = _link_hash(name, attributes, time_unix_nano, trace_id, span_id, self._native)
            attributes[_CHAIN_HASH] = h
            self.seq, self.head = seq, h  # a link that failed (an unencodable value) takes no place


# What ReadableSpan.__init__ sets, in its order: a linked span is a ReadableSpan with these fields of
# the span it replaces (the underlying attribute dicts, not the read-only views the properties
# return, which the encoders would have to walk item by item) and its new events.
_SPAN_FIELDS = ("_name", "_context", "_kind", "_instrumentation_info", "_instrumentation_scope", "_parent",
                "_start_time", "_end_time", "_attributes", "_events", "_links", "_resource", "_status")
_new_span = ReadableSpan.__new__


def _events(s: ReadableSpan) -> Iterable[Event]:
    """The span's events without a copy (a finished SDK span keeps them in a BoundedList, whose
    iterator takes its lock and copies them; nothing changes them once the span ended)."""
    events = s._events
    if type(events) is BoundedList:
        return events._dq  # type: ignore[attr-defined,no-any-return]
    return events or ()


def _rebuilt(s: ReadableSpan, events: list[Event]) -> ReadableSpan:
    old = getattr(s, "_events", None)
    if type(old) is BoundedList and old.dropped:  # events the span's limit pushed out stay counted
        kept: Any = BoundedList.from_seq(None, events)
        kept.dropped = old.dropped
    else:
        kept = tuple(events)
    out = _new_span(ReadableSpan)
    try:
        # Field by field in __init__'s order, read and written as attributes: the new span keeps its
        # fields inline like one made by __init__ (no dict of its own: one object fewer for the
        # garbage collector to traverse while the batch is in flight), and the old one's are not
        # turned into a dict by reading its __dict__.
        out._name = s._name
        out._context = s._context
        out._kind = s._kind
        out._instrumentation_info = s._instrumentation_info
        out._instrumentation_scope = s._instrumentation_scope
        out._parent = s._parent
        out._start_time = s._start_time
        out._end_time = s._end_time
        out._attributes = s._attributes
        out._events = kept
        out._links = s._links
        out._resource = s._resource
        out._status = s._status
    except AttributeError:  # pragma: no cover - a ReadableSpan made without its __init__
        for k in _SPAN_FIELDS:
            setattr(out, k, kept if k == "_events" else getattr(s, k, None))
    return out


class ChainStage:
    """Links audit events into the chain on the export thread, once per span, before the first
    export attempt (DecisionSpanProcessor's ``prepare``), so retries and the spool carry the same links
    and the recording thread pays nothing for them. It also fills ``decision.input.hash`` where the
    recorder left it to be computed from the stored (uncut) input.

    With ``checkpointer`` it adds a checkpoint span to a batch when one is due. For an idle process,
    :meth:`start` runs a timer that queues a checkpoint request once ``seconds`` passed with records
    unchecked; :meth:`closing_spans` gives the processor the "closed" request at shutdown. A request
    is a checkpoint event without its note: this stage writes the note when the request comes through,
    so checkpoints are made, linked and ordered on the export path only, like every other link.
    """

    def __init__(self, chain: HashChain | None, checkpointer: Checkpointer | None = None,
                 resource: Resource | None = None) -> None:
        self.chain = chain
        self.checkpointer = checkpointer if chain is not None else None
        self.resource = resource or Resource.create()
        self._lock = threading.Lock()
        self._submit: Callable[[ReadableSpan], None] | None = None
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    # -- the export path ---------------------------------------------------------------------------
    @staticmethod
    def _needs_work(span: ReadableSpan) -> bool:
        for e in _events(span):
            a = e._attributes
            if e._name in AUDIT_EVENTS and a is not None and D.CHAIN_HASH not in a:
                return True
        return False

    def __call__(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        needs, link = self._needs_work, self._link_span
        with self._lock:
            out = [link(s) if needs(s) else s for s in spans]
            cp = self.checkpointer
            if cp is not None and cp.pending and cp.closed:
                # recorded after the closing checkpoint (a span ended during shutdown): close again
                out.append(self._checkpoint_span(closed=True, complete=True))
            elif cp is not None and cp.due():
                out.append(self._checkpoint_span(closed=False, complete=True))
            return out

    def _link_span(self, s: ReadableSpan) -> ReadableSpan:
        ctx = s._context
        assert ctx is not None  # the SDK always sets it
        trace_id, span_id = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
        events = []
        for e in _events(s):
            ea = e._attributes
            if e._name in AUDIT_EVENTS and ea is not None and D.CHAIN_HASH not in ea:
                attrs = dict(ea if type(ea) is dict or not isinstance(ea, BoundedAttributes) else ea._dict)
                if e._name == DECISION_EVENT:
                    if D.INPUT in attrs and D.INPUT_HASH not in attrs:
                        attrs[D.INPUT_HASH] = sha256_hex(str(attrs[D.INPUT]))
                elif e.name == CHECKPOINT_EVENT and C.NOTE not in attrs:
                    attrs = self._note(closed=attrs.get(C.STATE) == "closed")
                if self.chain is not None:
                    self.chain.link(e._name, attrs, e._timestamp, trace_id, span_id)
                    if self.checkpointer is not None and e._name != CHECKPOINT_EVENT:
                        n = attrs.get(D.BATCH_COUNT, 1) if e._name == DECISION_EVENT else 0
                        self.checkpointer.count(n if isinstance(n, int) else 1)
                e = Event(e._name, attrs, e._timestamp)
            events.append(e)
        return _rebuilt(s, events)

    def _note(self, closed: bool) -> dict[str, Any]:
        if self.chain is None or self.checkpointer is None:
            return {}
        return {C.NOTE: self.checkpointer.note(self.chain.chain_id, self.chain.seq, self.chain.head, closed)}

    def _checkpoint_span(self, closed: bool, complete: bool) -> ReadableSpan:
        """A span with one checkpoint event: complete (note written, linked: on the export path) or
        a request (state only) that this stage completes when it comes through."""
        now = time.time_ns()
        ctx = SpanContext(_ids.generate_trace_id(), _ids.generate_span_id(), is_remote=False,
                          trace_flags=TraceFlags(TraceFlags.SAMPLED))
        span = ReadableSpan(
            name=CHECKPOINT_SPAN, context=ctx, resource=self.resource, kind=SpanKind.INTERNAL,
            attributes={S.AUDIT_RECORDS: 1, S.DECISION_AUDIT: True},
            events=(Event(CHECKPOINT_EVENT, {C.STATE: "closed" if closed else "open"}, now),),
            start_time=now, end_time=now, instrumentation_scope=_SCOPE,
        )
        return self._link_span(span) if complete else span

    # -- requests from outside the export path -----------------------------------------------------
    def start(self, submit: Callable[[ReadableSpan], None]) -> None:
        """Queue a checkpoint request through ``submit`` (the processor's ``on_end``) whenever
        ``seconds`` passed since the last checkpoint with records unchecked (an idle process)."""
        self._submit = submit
        if self.checkpointer is None:
            return
        self._stop = threading.Event()
        self._timer = start_thread(self._tick, "decisiontrail-checkpoint")

    def _tick(self) -> None:
        cp, stop, asked = self.checkpointer, self._stop, -1
        assert cp is not None
        while True:
            with self._lock:
                wait, made = cp.seconds_until_due(), cp.made
            if wait is None or asked == made:  # nothing unchecked, or our request is still on its way
                wait = cp.seconds
            if stop.wait(max(wait, 0.05)):
                return
            with self._lock:
                due, made = cp.due(), cp.made
            if due and asked != made and self._submit is not None:
                asked = made
                try:
                    self._submit(self._checkpoint_span(closed=False, complete=False))
                except Exception as exc:  # e.g. fail-closed with the spool unwritable: logged there too
                    _log.warning("decisiontrail: queueing a checkpoint failed: %r", exc)

    def closing_spans(self) -> list[ReadableSpan]:
        """At shutdown, before the processor's queue closes: the request for the "closed" checkpoint,
        which the export path completes after everything queued before it."""
        self._stop.set()
        if self.checkpointer is None:
            return []
        return [self._checkpoint_span(closed=True, complete=False)]

    def after_fork(self) -> None:
        """In a forked child: a chain of its own (two processes would claim the same positions),
        with no checkpoint yet, and its own timer."""
        self._lock = threading.Lock()
        if self.chain is not None:
            self.chain = HashChain()
        if self.checkpointer is not None:
            self.checkpointer.reset()
        if self._submit is not None:
            self.start(self._submit)


def verify(records: Iterable[Mapping[str, Any]]) -> tuple[int, list[Any]]:
    """The links alone, over ``chain_view()`` dicts of decisions and lifecycle records: (chained
    events checked, problems). The whole check (checkpoints, signatures, anchors) is verification.verify_records."""
    from .verification import AuditEvent, verify_records

    report = verify_records(AuditEvent(str(r.get("name", DECISION_EVENT)), r["attributes"], int(r["time_unix_nano"]),
                                       str(r["trace_id"]), str(r["span_id"])) for r in records)
    return report.events, [p for p in report.problems if not p.what.startswith("nothing to verify")]
