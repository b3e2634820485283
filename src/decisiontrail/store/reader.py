"""Reading the audit store: OTLP-JSON files from the embedded exporter or the Collector.

Accepted in a directory (searched recursively) or as single files:

- plain lines, one ``ExportTraceServiceRequest`` JSON per line (``*.json``, ``*.jsonl``, rotated
  backups ``decisions-<time>.json``);
- the Collector file exporter's ``compression: zstd`` form: each message a 4-byte big-endian length
  then a zstd frame of the JSON;
- a whole file compressed with zstd (``*.zst``).

A line that does not parse (the torn last line of a crashed writer) is skipped and counted in
``ReadStats.bad_lines``. Decisions are deduplicated by ``decision.id``: replays after an outage and
at-least-once delivery leave one record each.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..conventions import DECISION_EVENT
from ..conventions import DecisionAttributes as D
from ..conventions import ModelAttributes as M
from ..exporters.otlpjson import decode_attributes
from ..ids import offset_id

__all__ = ["SpanRecord", "DecisionRecord", "ReadStats", "iter_files", "iter_messages", "iter_spans",
           "iter_decisions"]

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_SUFFIXES = (".json", ".jsonl", ".zst", ".zstd")


@dataclass
class ReadStats:
    files: int = 0
    messages: int = 0
    bad_lines: int = 0
    duplicates: int = 0


@dataclass
class SpanRecord:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    resource: dict[str, Any]
    scope: str
    status_code: int
    links: list[tuple[str, str]] = field(default_factory=list)  # (trace id, span id) of each span link

    @property
    def service_name(self) -> str | None:
        v = self.resource.get("service.name")
        return str(v) if v is not None else None


def _iso(ns: int) -> str:
    t = _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.timezone.utc)
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _maybe_json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:  # cut to the size cap, or an error record: keep the text
        return text


@dataclass
class DecisionRecord:
    """One decision. ``attributes`` are those of the event it was read from; for a row of a packed
    batch event (``row`` is not None) the per-row values come from the event's arrays."""

    decision_id: str
    model_name: str | None
    model_version: str | None
    trace_id: str
    span_id: str
    time_unix_nano: int
    attributes: dict[str, Any]
    span_name: str = ""
    service_name: str | None = None
    row: int | None = None
    _parsed: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # Its outcomes and reviews (store.lifecycle.Lifecycle), once a reader joined them.
    lifecycle: Any = field(default=None, repr=False, compare=False)

    def _field(self, key: str) -> Any:
        if key not in self._parsed:  # shared by all rows of one event: parsed once
            self._parsed[key] = _maybe_json(self.attributes.get(key))
        return self._parsed[key]

    def _item(self, key: str) -> Any:
        value = self.attributes.get(key)
        if self.row is None:
            return value
        return value[self.row] if isinstance(value, list) and self.row < len(value) else None

    @property
    def timestamp(self) -> str:
        return _iso(self.time_unix_nano)

    @property
    def label(self) -> Any:
        return self._item(D.LABEL)

    @property
    def score(self) -> Any:
        return self._item(D.SCORE)

    @property
    def batch_index(self) -> int | None:
        base = self.attributes.get(D.BATCH_INDEX)
        if base is None:
            return None
        return int(base) + (self.row or 0)

    @property
    def input(self) -> Any:
        value = self._field(D.INPUT)
        if self.row is None:
            return value
        if not isinstance(value, dict):  # cut to the size cap: the rows cannot be told apart
            return value
        rows, columns = value.get("rows") or [], value.get("columns")
        if self.row >= len(rows):
            return None
        row = rows[self.row]
        return dict(zip(columns, row)) if columns else row

    @property
    def output(self) -> Any:
        value = self._field(D.OUTPUT)
        if self.row is None:
            return value
        return value[self.row] if isinstance(value, list) and self.row < len(value) else value

    def to_dict(self) -> dict[str, Any]:
        """The flat form of ``query --format jsonl``."""
        out = {
            "decision_id": self.decision_id,
            "timestamp": self.timestamp,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "service_name": self.service_name,
            "label": self.label,
            "score": self.score,
            "input": self.input,
            "output": self.output,
        }
        skip = {D.ID, D.INPUT, D.OUTPUT, D.LABEL, D.SCORE, M.NAME, M.VERSION, D.BATCH_COUNT}
        if self.row is not None:
            skip.add(D.INPUT_HASH)  # the hash is of the whole event's rows, not of this row
        for k, v in self.attributes.items():
            if k not in skip:
                out[k] = self._field(k) if k == D.EXPLANATION else v
        if self.row is not None:
            out[D.BATCH_INDEX] = self.batch_index
        if self.lifecycle is not None:  # effective_label, outcome, reviews
            out.update(self.lifecycle.flat(self.label))
        return out

    def chain_view(self) -> dict[str, Any]:
        """What the hash chain covers of this decision's event (chain.verify)."""
        return {"name": DECISION_EVENT, "attributes": self.attributes, "time_unix_nano": self.time_unix_nano,
                "trace_id": self.trace_id, "span_id": self.span_id}


def _paths(path: str | Path | Sequence[str | Path]) -> list[Path]:
    return [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]


def iter_files(path: str | Path | Sequence[str | Path]) -> list[Path]:
    """Audit files under ``path`` (a file, a directory, or several of them read as one store: the
    audit directories of several gateways), oldest first (rotated backups sort before the live file)."""
    files: list[Path] = []
    for p in _paths(path):
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files.extend(f for f in p.rglob("*") if f.is_file() and any(s in f.suffixes for s in _SUFFIXES))
        else:
            raise FileNotFoundError(f"no audit data at {p}")
    return sorted(set(files), key=lambda f: (f.stat().st_mtime_ns, f.name))


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise RuntimeError("reading zstd-compressed audit files needs: pip install 'decisiontrail[zstd]'") from exc
    return zstandard


def _length_prefixed(f: BinaryIO, stats: ReadStats) -> Iterator[bytes]:
    dctx = _zstd().ZstdDecompressor()
    while True:
        head = f.read(4)
        if len(head) < 4:
            return
        (n,) = struct.unpack(">I", head)
        frame = f.read(n)
        if len(frame) < n:
            stats.bad_lines += 1  # torn last message
            return
        try:
            yield dctx.decompressobj().decompress(frame)
        except Exception:
            stats.bad_lines += 1


def iter_messages(path: Path, stats: ReadStats | None = None,
                  contains: Sequence[bytes] | None = None) -> Iterator[dict[str, Any]]:
    """Each ``ExportTraceServiceRequest`` JSON object in one file; with ``contains``, only those whose
    text holds one of these byte strings (the others are not parsed: a cheap pass for rare records)."""
    stats = stats or ReadStats()
    stats.files += 1
    with open(path, "rb") as f:
        head = f.read(8)
        f.seek(0)
        if head[4:8] == _ZSTD_MAGIC:
            chunks: Iterator[bytes] = _length_prefixed(f, stats)
        elif head[:4] == _ZSTD_MAGIC:
            reader = _zstd().ZstdDecompressor().stream_reader(f, read_across_frames=True)
            chunks = iter(io.BufferedReader(reader))
        else:
            chunks = iter(f)
        for chunk in chunks:
            for line in chunk.splitlines():
                if not line.strip() or (contains is not None and not any(c in line for c in contains)):
                    continue
                try:
                    msg = json.loads(line)
                except ValueError:
                    stats.bad_lines += 1
                    continue
                stats.messages += 1
                yield msg


def iter_spans(path: str | Path | Sequence[str | Path], stats: ReadStats | None = None,
               contains: Sequence[bytes] | None = None) -> Iterator[SpanRecord]:
    for file in iter_files(path):
        for msg in iter_messages(file, stats, contains):
            for rs in msg.get("resourceSpans", []):
                resource = decode_attributes(rs.get("resource", {}).get("attributes"))
                for ss in rs.get("scopeSpans", []):
                    scope = ss.get("scope", {}).get("name", "")
                    for s in ss.get("spans", []):
                        yield SpanRecord(
                            trace_id=s.get("traceId", ""),
                            span_id=s.get("spanId", ""),
                            parent_span_id=s.get("parentSpanId", ""),
                            name=s.get("name", ""),
                            kind=int(s.get("kind", 0)),
                            start_time_unix_nano=int(s.get("startTimeUnixNano", 0)),
                            end_time_unix_nano=int(s.get("endTimeUnixNano", 0)),
                            attributes=decode_attributes(s.get("attributes")),
                            events=s.get("events", []),
                            resource=resource,
                            scope=scope,
                            status_code=int(s.get("status", {}).get("code", 0)),
                            links=[(str(k.get("traceId", "")), str(k.get("spanId", ""))) for k in s.get("links") or []],
                        )


def decisions_of(span: SpanRecord) -> Iterator[DecisionRecord]:
    """The decisions on one span: one per event, or one per row of a packed batch event."""
    for ev in span.events:
        if ev.get("name") != DECISION_EVENT:
            continue
        attrs = decode_attributes(ev.get("attributes"))
        first = str(attrs.get(D.ID, ""))
        count = attrs.get(D.BATCH_COUNT)
        parsed: dict[str, Any] = {}
        for row in range(int(count)) if count is not None else (None,):
            yield DecisionRecord(
                decision_id=first if not row else offset_id(first, row),
                model_name=attrs.get(M.NAME),
                model_version=attrs.get(M.VERSION),
                trace_id=span.trace_id,
                span_id=span.span_id,
                time_unix_nano=int(ev.get("timeUnixNano", 0)),
                attributes=attrs,
                span_name=span.name,
                service_name=span.service_name,
                row=row,
                _parsed=parsed,
            )


def iter_decisions(path: str | Path | Sequence[str | Path], stats: ReadStats | None = None, dedup: bool = True) -> Iterator[DecisionRecord]:
    """Every decision under ``path``, in file order, each decision id once (with ``dedup``)."""
    stats = stats if stats is not None else ReadStats()
    seen: set[str] = set()
    for span in iter_spans(path, stats):
        for d in decisions_of(span):
            if dedup:
                if d.decision_id in seen:
                    stats.duplicates += 1
                    continue
                seen.add(d.decision_id)
            yield d
