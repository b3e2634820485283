"""``json.loads`` of an OTLP JSON request in pieces, giving the GIL up between them (pacing.py).

``json.loads`` of one spool record (a batch of 512 decision spans, ~0.5 MB) is a single C call that
holds the GIL for several milliseconds, and every request thread of the process waits that long. Here
the outer containers of the request (``resourceSpans``, ``scopeSpans``, ``spans``, down to
:data:`WALK_DEPTH`) are walked in Python and every value below them (a span, a resource's
attribute) is parsed by the json module's own C scanner (``raw_decode``), with
:func:`pacing.maybe_pause` every :data:`pacing.CHUNK_SPANS` of them. The result is the value
``json.loads`` gives; any text the walk does not expect (it is strict about the structure) is parsed
by ``json.loads`` itself, which then also gives its usual error for text that is not JSON.
"""

from __future__ import annotations

import json
from typing import Any

from ..pacing import CHUNK_SPANS, maybe_pause

__all__ = ["loads_paced", "WALK_DEPTH"]

WALK_DEPTH = 6  # request {0} resourceSpans [1] {2} scopeSpans [3] {4} spans [5]: each span is one piece
_raw = json.JSONDecoder().raw_decode  # json.loads's own decoder settings (NaN, Infinity allowed)
_WS = " \t\n\r"


class _Unexpected(Exception):
    """The text is not what the walk expects: json.loads decides."""


def loads_paced(text: str | bytes) -> Any:
    """``json.loads(text)``, pausing between the request's spans."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode(json.detect_encoding(text), "surrogatepass")  # as json.loads decodes bytes
    try:
        value, end = _walk(text, _skip(text, 0), 0, [0])
        if _skip(text, end) != len(text):
            raise _Unexpected
        return value
    except (_Unexpected, ValueError, IndexError):
        return json.loads(text)


def _skip(s: str, i: int) -> int:
    while i < len(s) and s[i] in _WS:
        i += 1
    return i


def _next(s: str, i: int, close: str) -> tuple[int, bool]:
    """Past what follows a container's item: the next item's start, or (True) the container's end."""
    i = _skip(s, i)
    if s[i] == ",":
        return _skip(s, i + 1), False
    if s[i] == close:
        return i + 1, True
    raise _Unexpected


def _walk(s: str, i: int, depth: int, pieces: list[int]) -> tuple[Any, int]:
    c = s[i]
    if depth >= WALK_DEPTH or (c != "{" and c != "["):
        pieces[0] += 1
        if not pieces[0] % CHUNK_SPANS:
            maybe_pause()
        return _raw(s, i)
    i = _skip(s, i + 1)
    if c == "[":
        items: list[Any] = []
        if s[i] == "]":
            return items, i + 1
        while True:
            value, i = _walk(s, i, depth + 1, pieces)
            items.append(value)
            i, end = _next(s, i, "]")
            if end:
                return items, i
    members: dict[str, Any] = {}
    if s[i] == "}":
        return members, i + 1
    while True:
        if s[i] != '"':
            raise _Unexpected
        key, i = _raw(s, i)
        i = _skip(s, i)
        if s[i] != ":":
            raise _Unexpected
        members[key], i = _walk(s, _skip(s, i + 1), depth + 1, pieces)
        i, end = _next(s, i, "}")
        if end:
            return members, i
