"""Bounds of the recorded attributes other than the JSON fields: every value a decision carries is
an OpenTelemetry attribute value of bounded size, whatever the application passed.

=====================================  ==========================================================
value                                  recorded as
=====================================  ==========================================================
bool, int, float                       itself
str of at most ``limit`` characters    itself
longer str                             its head, then ``…[truncated: <n> chars, sha256:<hex>]``
                                       (``n`` characters in all, hex sha256 of its UTF-8), at most
                                       ``limit`` characters; the attribute is named in
                                       ``decision.truncated``
numpy scalar                           the equivalent Python value
list/tuple of str, bool, int or float  the list; past ``MAX_ATTRIBUTE_ITEMS`` members it is cut
(one type), numpy array                and named; strings in it are each bounded as above to
                                       ``max(256, limit // members)`` (``name[i]`` is named)
None                                   left out
anything else (dict, mixed list,       its canonical JSON text (encoding.canonical), bounded as
bytes, objects)                        a string
=====================================  ==========================================================

The recorder (``Recorder.attribute``, its one choke point) also cuts application attribute names to
256 characters and keeps at most 128 application attributes (``attributes`` is then named).
"""

from __future__ import annotations

import hashlib
from typing import Any

from .canonical import canonical_json

__all__ = ["bound_string", "bound_attribute", "MAX_ATTRIBUTE_ITEMS"]

MAX_ATTRIBUTE_ITEMS = 1024
_MIN_ITEM_CHARS = 256
_SCALARS = (bool, int, float, str)


def bound_string(s: str, limit: int) -> tuple[str, bool]:
    """``(s, False)`` when it fits ``limit`` characters, else the documented cut form and True."""
    if len(s) <= limit:
        return s, False
    digest = hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()
    tail = f"…[truncated: {len(s)} chars, sha256:{digest}]"
    return s[: max(0, limit - len(tail))] + tail, True


def _sequence(key: str, items: list[Any], limit: int, truncated: list[str]) -> Any:
    kinds = {type(v) for v in items}
    if len(kinds) > 1 or not kinds <= set(_SCALARS):
        text, cut = bound_string(canonical_json(items), limit)
        if cut:
            truncated.append(key)
        return text
    if len(items) > MAX_ATTRIBUTE_ITEMS:
        items = items[:MAX_ATTRIBUTE_ITEMS]
        truncated.append(key)
    if kinds == {str}:
        each = max(_MIN_ITEM_CHARS, limit // max(len(items), 1))
        out = []
        for i, v in enumerate(items):
            s, cut = bound_string(v, each)
            if cut:
                truncated.append(f"{key}[{i}]")
            out.append(s)
        return out
    return items


def bound_attribute(key: str, value: Any, limit: int, truncated: list[str]) -> Any:
    """``value`` as a bounded OpenTelemetry attribute value (None: leave the attribute out); cut
    values append their path (the attribute name, or ``name[i]``) to ``truncated``."""
    t = type(value)
    if t is str:
        if len(value) <= limit:
            return value
        s, _ = bound_string(value, limit)
        truncated.append(key)
        return s
    if t in (bool, int, float):
        return value
    if value is None:
        return None
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return bound_attribute(key, value.tolist(), limit, truncated)
    if isinstance(value, (list, tuple)):
        return _sequence(key, list(value), limit, truncated)
    if isinstance(value, str):  # subclasses: str enums and the like
        return bound_attribute(key, str.__str__(value), limit, truncated)
    if isinstance(value, (bool, int, float)):
        return bool(value) if isinstance(value, bool) else (int(value) if isinstance(value, int) else float(value))
    s, cut = bound_string(canonical_json(value), limit)
    if cut:
        truncated.append(key)
    return s
