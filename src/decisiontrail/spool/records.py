"""One spool record: a line of a segment, checksummed, that says what it holds.

A record is one OTLP JSON ``ExportTraceServiceRequest`` (exporters/otlpjson.py) whose first key is a
header decisiontrail adds, ``{"dtSpool":{"crc32":"<8 hex>","decisions":<n>,"spans":<n>}, ...}``: the
CRC-32 of the request's own JSON (the line without the header, starting at ``{"resourceSpans"``),
and how many decisions and spans it holds. The line stays valid JSON and a valid request for any
reader that ignores unknown keys (``decisiontrail query`` does).

:func:`decode` tells an intact record from a damaged one: a checksum mismatch (a flipped byte, a
torn or interleaved write), a header that cannot be read, JSON that is not a request, or a valid
request of the wrong shape (no spans, or not as many as the header says). A damaged record is never
replayed and never silently dropped: the replayer keeps it aside and counts it (replay.py). Lines
without a header (written before records were checksummed) are accepted when they parse into spans.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan

from ..exporters.otlpjson import spans_from_otlp_json, spans_to_otlp_json

__all__ = ["Record", "encode", "decode"]

_HEAD = re.compile(rb'\{"dtSpool":\{"crc32":"([0-9a-f]{8})","decisions":(\d{1,12}),"spans":(\d{1,12})\},')
_HEAD_KEY = b'{"dtSpool"'


@dataclass
class Record:
    line: int                          # 0-based line number in its segment
    raw: bytes                         # the line as read, newline included
    spans: list[ReadableSpan]          # empty when damaged
    problem: str | None = None         # why it cannot be replayed
    decisions: int | None = None       # what the header says it holds (None: no readable header)

    @property
    def intact(self) -> bool:
        return self.problem is None


def encode(spans: Sequence[ReadableSpan], decisions: int) -> bytes:
    body = spans_to_otlp_json(spans, paced=True).encode("utf-8", "surrogatepass")
    head = b'{"dtSpool":{"crc32":"%08x","decisions":%d,"spans":%d},' % (zlib.crc32(body), decisions, len(spans))
    return head + body[1:] + b"\n"


def decode(raw: bytes, line: int) -> Record:
    """The record of one complete line (ending in a newline)."""
    text = raw[:-1] if raw.endswith(b"\n") else raw
    m = _HEAD.match(text)
    if m is not None:
        decisions, n_spans = int(m[2]), int(m[3])
        body = b"{" + text[m.end():]
        if zlib.crc32(body) != int(m[1], 16):
            return Record(line, raw, [], "checksum mismatch", decisions)
        return _parse(line, raw, body, decisions, n_spans)
    if text.startswith(_HEAD_KEY):
        return Record(line, raw, [], "damaged record header")
    return _parse(line, raw, text, None, None)  # written before records had a header


def _parse(line: int, raw: bytes, body: bytes, decisions: int | None, n_spans: int | None) -> Record:
    try:
        spans = spans_from_otlp_json(body)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return Record(line, raw, [], f"not an OTLP JSON request: {exc!r}"[:300], decisions)
    if not spans:
        return Record(line, raw, [], "valid JSON of the wrong shape: no spans", decisions)
    if n_spans is not None and len(spans) != n_spans:
        return Record(line, raw, [], f"holds {len(spans)} spans where its header says {n_spans}", decisions)
    return Record(line, raw, spans, None, decisions)
