"""One bounded, deterministic, canonical JSON encoding for decision inputs, outputs and explanations,
and the bounds of every other recorded attribute.

Canonical (canonical.py): keys sorted, no whitespace, UTF-8 (not ASCII-escaped); the same value
always gives the same text, so ``decision.input.hash`` identifies an input. Representations of
values JSON lacks:

=====================================  ==========================================================
value                                  encoded as
=====================================  ==========================================================
NaN, +Inf, -Inf                        the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``
numpy / pandas scalars                 the equivalent Python number, bool or string
numpy arrays                           nested lists
pandas Series                          object of index -> value
pandas DataFrame                       list of row objects (column -> value)
pandas NA / NaT, None                  ``null``
datetime, date, time, pandas Timestamp ISO 8601 string
Decimal                                its exact decimal string
bytes, bytearray, memoryview           ``{"$bytes": "<base64>"}``, longer than 4 KiB: ``{"$bytes_sha256", "$len"}``
set, frozenset                         list sorted by each element's canonical text
tuple                                  list
non-string dict keys                   their canonical text (``1`` -> ``"1"``, ``(1, 2)`` -> ``"[1,2]"``)
cycle                                  the string ``"<cycle>"``
nesting deeper than ``max_depth``      the string ``"<max depth>"`` (where the fast encoder cannot go),
                                       its path in ``decision.truncated``
anything else                          ``"<TypeName: repr>"`` (repr cut to 200 characters), or
                                       ``"<TypeName>"`` when its ``__repr__`` raises
=====================================  ==========================================================

Bounded (bounded.py): a field whose canonical text is longer than ``max_chars`` is stored as a
summary that is valid JSON within the cap: the same structure, its small members whole (the budget
goes to the smallest first), its large leaves replaced in place by a **marker**::

    {"$truncated": "str", "len": 245760, "sha256": "<hex>", "head": "Dear sir, I am writing…"}
    {"$truncated": "ndarray", "shape": [2000, 2000], "dtype": "float64", "sha256": "<hex>", "head": "[[0.1,…"}
    {"$truncated": "dict", "len": 50000, "sha256": "<hex>", "head": "{\\"k0\\":0,\\"k1\\":1,…"}

``$truncated`` is the replaced value's type (``str``, ``bytes``, ``list``, ``dict``, ``set``,
``ndarray``, ``DataFrame``, ``Series``, ``Tensor``...); ``len`` its length (characters, bytes or
members), or ``shape`` and ``dtype`` for arrays, frames and tensors; ``sha256`` the hex sha256 of
the value's own canonical text; ``head`` its first characters (of the string itself for a string,
else of its canonical text), left out when there is no room. Large leaves are long strings, big
arrays, frames and tensors, lists and dicts of more than ``MAX_ITEMS`` members, and containers
nested deeper than ``DESCEND_LEVELS``. ``decision.truncated`` lists the paths of the replaced
values (``input.essay``, ``input.rows[0][3]``, ``output["a b"]``; the bare field name when the
whole field is one marker), and the recorder sets the field's full hash (``decision.input.hash``,
``decision.output.hash``, ``decision.explanation.hash``) and, with a payload store, its reference.

Attributes (attributes.py): every other recorded value (model name and version, label, reason
codes, the application's ``attributes``) is bounded too; see :func:`bound_attribute`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .attributes import bound_attribute, bound_string
from .bounded import MARKER, Bounded, FieldEncoder, field_path, is_cut
from .canonical import DEFAULT_MAX_CHARS, DEFAULT_MAX_DEPTH, canonical_json, sha256_hex, to_jsonable

__all__ = ["Encoded", "encode", "to_jsonable", "canonical_json", "sha256_hex", "DEFAULT_MAX_CHARS",
           "DEFAULT_MAX_DEPTH", "Bounded", "FieldEncoder", "MARKER", "field_path", "is_cut",
           "bound_attribute", "bound_string"]


class Encoded(NamedTuple):
    text: str  # canonical JSON, or its bounded summary: valid JSON either way
    full_hash: str  # "sha256:<hex>" of the full canonical JSON
    cut: tuple[str, ...]  # paths replaced by markers (empty: the text is whole)

    @property
    def truncated(self) -> bool:
        return bool(self.cut)


def encode(value: Any, max_chars: int = DEFAULT_MAX_CHARS, max_depth: int = DEFAULT_MAX_DEPTH,
           name: str = "input") -> Encoded:
    """The bounded encoding of one field, with the hash of its full canonical text."""
    r = FieldEncoder(max_chars, max_depth)(value, name)
    if isinstance(r, str):
        return Encoded(r, sha256_hex(r), ())
    return Encoded(r.text, sha256_hex(r.full), r.cut)
