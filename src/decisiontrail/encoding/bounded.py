"""Structure-aware bounding of a JSON field (input, output, explanation, a packed batch's rows).

A field whose canonical text fits ``max_chars`` is stored whole. A larger one is stored as a
*summary*: the same JSON structure, where the largest leaves are replaced in place by a marker
(the format is in the package docstring), the smallest members kept whole first. The summary is
always valid JSON (RFC 8259, no NaN) of at most ``max_chars`` characters, and the paths of the
replaced values are returned for ``decision.truncated``. The caller records the hash of the full
canonical text (and may offload it), so the summary stays tied to the exact value.

Cost: a field that fits pays one C-encoder pass, as before. A larger one is encoded once more per
level the bounding descends into (at most ``DESCEND_LEVELS``); arrays and frames over the cap are
spotted by their size before any text is made, and formatted once, for their hash.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, NamedTuple

from .canonical import (
    _NOT_LEAF,
    DEFAULT_MAX_DEPTH,
    _container_view,
    _convert_leaf,
    _dumps_plain,
    _key,
    canonical_json,
    guarded_dumps,
    sha256_hex,
)

__all__ = ["Bounded", "FieldEncoder", "is_cut", "field_path", "MARKER", "MAX_ITEMS", "HEAD_CHARS",
           "DESCEND_LEVELS", "MIN_MAX_CHARS"]

MARKER = "$truncated"
"""Key of a marker object; its value is the replaced value's type."""
MAX_ITEMS = 256
"""A list or dict over the cap with more members than this is replaced whole (by one marker)."""
HEAD_CHARS = 64
"""Characters of a marker's ``head``."""
DESCEND_LEVELS = 8
"""Levels of nesting the bounding descends into; a container deeper than this is replaced whole."""
MIN_MAX_CHARS = 256
"""The smallest cap that holds a marker (with its sha256)."""
_MARKER_MIN = 128  # room kept for each member still to be replaced: a marker without its head
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


class Bounded(NamedTuple):
    """A field over the cap: ``text`` is its summary (valid JSON, at most the cap), ``full`` the full
    canonical text, ``cut`` the JSON paths of the values replaced by markers."""

    text: str
    full: str
    cut: tuple[str, ...]


def field_path(parent: str, key: str | int) -> str:
    """``input.applicant``, ``input.rows[3]``, ``input["a b"]``: the path notation of
    ``decision.truncated`` (and ``decision.redacted``)."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _SIMPLE_KEY.match(key):
        return f"{parent}.{key}"
    return f"{parent}[{_dumps_plain(key)}]"


def is_cut(paths: Any, name: str) -> bool:
    """True when ``decision.truncated`` (``paths``) says the stored ``name`` field is not whole."""
    return any(p == name or p.startswith((name + ".", name + "[")) for p in paths or ())


def _children(o: Any, max_items: int) -> tuple[bool, list[tuple[Any, Any]]] | None:
    """The members of a container, in canonical order (dict keys sorted as their text, sets by
    their canonical text); None for a leaf (a string, number, array, frame, tensor, bytes...) and
    for a container of more than ``max_items`` members, which is replaced whole."""
    if isinstance(o, str) or hasattr(o, "shape"):
        return None
    if isinstance(o, (dict, list, tuple, set, frozenset)) and len(o) > max_items:
        return None
    if not isinstance(o, (dict, list, tuple)):
        if _convert_leaf(o) is not _NOT_LEAF:
            return None
        if isinstance(o, (set, frozenset)):
            return False, list(enumerate(sorted(o, key=canonical_json)))
        o = _container_view(o)
        if not isinstance(o, (dict, list, tuple)) or len(o) > max_items:
            return None
    if isinstance(o, dict):
        items = [(_key(k, 0, DEFAULT_MAX_DEPTH), v) for k, v in o.items()]
        items.sort(key=lambda kv: kv[0])
        return True, items
    return False, list(enumerate(o))


def _describe(o: Any) -> dict[str, Any]:
    """Type, length or shape and dtype of a replaced value (the marker without hash and head)."""
    if isinstance(o, str):
        return {MARKER: "str", "len": len(o)}
    if isinstance(o, (bytes, bytearray, memoryview)):
        return {MARKER: "bytes", "len": len(bytes(o))}
    shape = getattr(o, "shape", None)
    if shape is not None and not callable(shape):
        out: dict[str, Any] = {MARKER: type(o).__name__}
        try:
            out["shape"] = [int(n) for n in shape]
        except (TypeError, ValueError):
            pass
        dtype = getattr(o, "dtype", None)
        if dtype is None and hasattr(o, "dtypes"):  # a DataFrame: one dtype, or "mixed"
            kinds = {str(t) for t in o.dtypes}
            dtype = kinds.pop() if len(kinds) == 1 else "mixed"
        if dtype is not None:
            out["dtype"] = str(dtype)
        return out
    if isinstance(o, dict):
        return {MARKER: "dict", "len": len(o)}
    if isinstance(o, (list, tuple)):
        return {MARKER: "list", "len": len(o)}
    if isinstance(o, (set, frozenset)):
        return {MARKER: "set", "len": len(o)}
    try:
        return {MARKER: type(o).__name__, "len": len(o)}
    except Exception:
        return {MARKER: type(o).__name__}


_DEPTH_CUT = '"<max depth>"'


def _depth_cuts(value: Any, path: str) -> list[str]:
    """Paths of the ``"<max depth>"`` strings in a (short) stored summary."""
    if value == _DEPTH_CUT[1:-1]:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _depth_cuts(v, field_path(path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _depth_cuts(v, field_path(path, i))]
    return []


class FieldEncoder:
    """Encodes fields under one cap: ``encoder.encode(value, "input")`` (or ``encoder(...)``) is the
    canonical text when it fits, else a :class:`Bounded` summary. Thread-safe (no state between calls)."""

    def __init__(self, max_chars: int, max_depth: int = DEFAULT_MAX_DEPTH, max_items: int = MAX_ITEMS) -> None:
        self.max_chars = max(max_chars, MIN_MAX_CHARS)
        self.max_depth = max_depth
        self.max_items = max_items
        # An array of more elements than half the cap cannot fit: each takes a digit and a comma.
        self.encode = self._make_encode(guarded_dumps(self.max_chars // 2))

    def _make_encode(self, dumps: Callable[[Any], str]) -> Callable[[Any, str], str | Bounded]:
        # A closure over locals: this is the recorder's hot path, and a typical input must cost
        # no more than the plain canonical encoding did before bounding (benchmarks/bench_recorder.py).
        cap, bound = self.max_chars, self._bound

        def encode(value: Any, name: str) -> str | Bounded:
            try:
                text = dumps(value)
            except Exception:  # TooLarge, or NaN, a cycle, an odd key: member by member
                return bound(value, None, name)
            if len(text) <= cap:
                return text
            return bound(value, text, name)

        return encode

    def __call__(self, value: Any, name: str) -> str | Bounded:
        return self.encode(value, name)

    def of_text(self, value: Any, text: str, name: str) -> str | Bounded:
        """As calling the encoder, when the caller has the canonical text already."""
        return text if len(text) <= self.max_chars else self._bound(value, text, name)

    # -- the summary -------------------------------------------------------------------------
    def _bound(self, value: Any, text: str | None, name: str) -> str | Bounded:
        cut: list[str] = []
        summary, full = self._node(value, text, name, 0, self.max_chars, set(), cut)
        if len(summary) > self.max_chars:  # a container of many members each needing a marker
            cut = []
            summary = self._marker(value, full, name, self.max_chars, cut)
        if text is None and _DEPTH_CUT in summary:  # the careful path cut nesting at max_depth: say where
            cut += _depth_cuts(json.loads(summary), name)
        if not cut:  # it fit after all (the careful path made it short)
            return full
        return Bounded(summary, full, tuple(cut))

    def _text(self, o: Any, depth: int) -> str:
        return canonical_json(o, max(1, self.max_depth - depth))

    def _node(self, o: Any, text: str | None, path: str, depth: int, budget: int,
              on_path: set[int], cut: list[str]) -> tuple[str, str]:
        """(summary text within ``budget`` where possible, full canonical text) of ``o``."""
        if text is not None and len(text) <= budget:
            return text, text
        try:
            view = _children(o, self.max_items) if depth < DESCEND_LEVELS else None
        except Exception:  # a container that fails while iterated: its canonical text says what it is
            view = None
        if view is None:
            full = text if text is not None else self._text(o, depth)
            if len(full) <= budget:
                return full, full
            return self._marker(o, full, path, budget, cut), full
        is_dict, kids = view
        on_path.add(id(o))
        try:
            texts = ['"<cycle>"' if id(v) in on_path else self._text(v, depth + 1) for _, v in kids]
        finally:
            on_path.discard(id(o))
        keys = [_dumps_plain(k) + ":" if is_dict else "" for k, _ in kids]
        open_, close = ("{", "}") if is_dict else ("[", "]")
        full = text if text is not None else open_ + ",".join(k + t for k, t in zip(keys, texts)) + close
        if len(full) <= budget:
            return full, full
        overhead = 2 + max(len(kids) - 1, 0) + sum(len(k) for k in keys)
        avail = budget - overhead
        if avail < len(kids) * _MARKER_MIN and avail < sum(min(len(t), _MARKER_MIN) for t in texts):
            return self._marker(o, full, path, budget, cut), full
        # Budget to the small members first: keep them whole, smallest first, while the members
        # still to place keep room for a marker each; the rest share what is left.
        order = sorted(range(len(kids)), key=lambda i: len(texts[i]))
        out: list[str | None] = [None] * len(kids)
        placed = 0
        for placed, i in enumerate(order):
            need = len(texts[i]) + (len(order) - placed - 1) * _MARKER_MIN
            if need > avail:
                break
            out[i] = texts[i]
            avail -= len(texts[i])
        else:
            placed = len(order)
        rest = order[placed:]
        on_path.add(id(o))
        try:
            for n, i in enumerate(rest):
                share = avail // (len(rest) - n)
                k, v = kids[i]
                s, _ = self._node(v, texts[i], field_path(path, k), depth + 1, share, on_path, cut)
                out[i] = s
                avail -= len(s)
        finally:
            on_path.discard(id(o))
        return open_ + ",".join(k + str(s) for k, s in zip(keys, out)) + close, full

    def _marker(self, o: Any, full: str, path: str, budget: int, cut: list[str]) -> str:
        info = _describe(o)
        info["sha256"] = sha256_hex(full)[len("sha256:"):]
        base = _dumps_plain(info)
        source = o if isinstance(o, str) else full
        room = min(HEAD_CHARS, budget - len(base) - len(',"head":""'))
        cut.append(path)
        while room > 0:
            info["head"] = source[:room]
            text = _dumps_plain(info)
            if len(text) <= budget:
                return str(text)
            room = min(room - 1, room - (len(text) - budget))  # escapes took more than one character each
        return str(base)

