"""Canonical JSON of any Python value: the one text that ``decision.input.hash`` identifies.

Keys sorted, no whitespace, UTF-8 (not ASCII-escaped); the same value always gives the same text.
The table of representations is in the package docstring (``decisiontrail.encoding``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import enum
import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from typing import Any, Callable

__all__ = ["to_jsonable", "canonical_json", "guarded_dumps", "TooLarge", "sha256_hex", "size_hint",
           "DEFAULT_MAX_CHARS", "DEFAULT_MAX_DEPTH"]

DEFAULT_MAX_CHARS = 8192
DEFAULT_MAX_DEPTH = 32
_MAX_INLINE_BYTES = 4096
_REPR_LIMIT = 200


def _make_dumps(default: Any) -> Any:
    """A canonical dumps. ``JSONEncoder.encode`` builds a new C encoder on every call (~1.5 µs);
    building it once halves the cost of encoding a small input. No circular check: a cycle raises
    RecursionError, which sends the value down the careful path."""
    enc = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                           default=default, check_circular=False)
    c_make = getattr(json.encoder, "c_make_encoder", None)
    if c_make is None:  # pragma: no cover - CPython always has the C accelerator
        return enc.encode
    it = c_make(None, enc.default, json.encoder.encode_basestring, None, ":", ",", True, False, False)

    def dumps(o: Any) -> str:
        if isinstance(o, str):
            return enc.encode(o)
        return "".join(it(o, 0))

    return dumps


_dumps_fast = _make_dumps(lambda o: _default(o))
_dumps_plain = _make_dumps(json.JSONEncoder().default)


def sha256_hex(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def canonical_json(value: Any, max_depth: int = DEFAULT_MAX_DEPTH) -> str:
    """Canonical JSON text of any value, never raising."""
    try:
        # Fast path: the C encoder with a hook for the non-JSON types. It raises on NaN, cycles,
        # unsortable or non-scalar keys, deep nesting and containers that fail while iterated;
        # those take the careful path below.
        return str(_dumps_fast(value))
    except Exception:
        try:
            return str(_dumps_plain(to_jsonable(value, max_depth)))
        except Exception:  # pragma: no cover - to_jsonable returns plain JSON types
            return str(_dumps_plain(_fallback_repr(value)))


class TooLarge(Exception):
    """Raised by a :func:`guarded_dumps` encoder on an array or frame too large for the cap."""


def size_hint(o: Any) -> int:
    """Element count of a numpy array, pandas object or tensor (0 for anything else): its canonical
    text has at least about twice as many characters."""
    if not type(o).__module__.startswith(("numpy", "pandas", "torch")):
        return 0
    numel = getattr(o, "numel", None)  # torch: Tensor.size() is the shape, numel() the count
    size = numel() if callable(numel) else getattr(o, "size", 0)
    return size if isinstance(size, int) else 0


_guarded: dict[int, Callable[[Any], str]] = {}


def guarded_dumps(max_elements: int) -> Callable[[Any], str]:
    """The canonical fast path, raising :class:`TooLarge` as soon as it meets an array, frame or
    tensor of more than ``max_elements`` elements, before turning it into text: the bounded encoder
    then handles that value by its structure instead of formatting millions of floats twice."""
    found = _guarded.get(max_elements)
    if found is None:
        def default(o: Any) -> Any:
            if type(o) is _ndarray[0] and o.dtype.kind not in "MmO":
                # A plain numeric array (a model's input row): what the general path below ends
                # in (_convert_numpy), without its table of types (~1 µs an array).
                if o.size > max_elements:
                    raise TooLarge
                return o.tolist()
            if size_hint(o) > max_elements:
                raise TooLarge
            return _default(o)

        found = _guarded.setdefault(max_elements, _make_dumps(default))
    return found


def _float(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def _bytes(b: bytes) -> dict[str, Any]:
    if len(b) > _MAX_INLINE_BYTES:
        return {"$bytes_sha256": hashlib.sha256(b).hexdigest(), "$len": len(b)}
    return {"$bytes": base64.b64encode(b).decode("ascii")}


def _fallback_repr(o: Any) -> str:
    name = type(o).__name__
    try:
        r = repr(o)
    except Exception:  # an object whose __repr__ raises still gets a bounded representation
        return f"<{name}>"
    if len(r) > _REPR_LIMIT:
        r = r[:_REPR_LIMIT] + "…"
    return f"<{name}: {r}>"


def _default(o: Any) -> Any:
    """Hook of the fast path: turn one non-JSON object into something JSON can hold."""
    converted = _convert_leaf(o)
    if converted is not _NOT_LEAF:
        return converted
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=canonical_json)
    return _container_view(o)


_NOT_LEAF = object()


def _convert_leaf(o: Any) -> Any:  # noqa: C901 - one flat table of types
    """A JSON-ready scalar for ``o``, or _NOT_LEAF when ``o`` is a container or unknown."""
    if isinstance(o, enum.Enum):
        o = o.value
        if isinstance(o, (str, int, bool)) or o is None:
            return o
    if isinstance(o, float):
        return _float(o)
    module = type(o).__module__
    if module.startswith("pandas"):  # before datetime: pd.NaT and pd.Timestamp are datetimes
        return _convert_pandas(o)
    if isinstance(o, (_dt.datetime, _dt.date, _dt.time)):
        return o.isoformat()
    if isinstance(o, _dt.timedelta):
        return o.total_seconds()
    if isinstance(o, decimal.Decimal):
        return str(o)
    if isinstance(o, uuid.UUID):
        return str(o)
    if isinstance(o, (bytes, bytearray, memoryview)):
        return _bytes(bytes(o))
    if module.startswith("numpy"):
        return _convert_numpy(o)
    return _NOT_LEAF


_ndarray: list[Any] = [None]  # numpy.ndarray, once an array was met (numpy is not imported for it)


def _convert_numpy(o: Any) -> Any:
    import numpy as np

    _ndarray[0] = np.ndarray
    if isinstance(o, np.ndarray):
        if o.dtype.kind in "Mm":  # datetime64 / timedelta64
            return o.astype(str).tolist()
        return _NOT_LEAF if o.dtype == object else o.tolist()
    if isinstance(o, np.generic):
        if isinstance(o, (np.datetime64, np.timedelta64)):
            return str(o)
        v = o.item()
        if isinstance(v, float):
            return _float(v)
        if isinstance(v, bytes):
            return _bytes(v)
        return v
    return _NOT_LEAF


def _convert_pandas(o: Any) -> Any:
    import pandas as pd

    if o is pd.NaT or o is pd.NA:
        return None
    if isinstance(o, pd.Timestamp):
        return o.isoformat()
    if isinstance(o, pd.Timedelta):
        return o.total_seconds()
    if isinstance(o, pd.DataFrame):
        # Rows as objects; NaN/NA inside go through the careful path via to_jsonable.
        return [dict(zip(map(str, o.columns), row)) for row in o.itertuples(index=False, name=None)]
    if isinstance(o, pd.Series):
        return {str(k): v for k, v in o.items()}
    if isinstance(o, pd.Index):
        return list(o)
    return _NOT_LEAF


def _container_view(o: Any) -> Any:
    """Lists/dicts for container-like objects; a bounded repr for anything else."""
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
    if isinstance(o, Mapping):
        return dict(o)
    if hasattr(o, "_asdict"):  # namedtuple
        return o._asdict()
    if hasattr(o, "tolist") and callable(o.tolist):  # numpy object arrays, array.array, torch tensors
        try:
            return o.tolist()
        except Exception:
            pass
    return _fallback_repr(o)


def _key(k: Any, depth: int, max_depth: int) -> str:
    if isinstance(k, str):
        return k
    if k is None or isinstance(k, (bool, int, float)):
        # What json.dumps itself does with scalar keys, so both paths agree.
        return json.dumps(_float(k) if isinstance(k, float) else k)
    return str(_dumps_plain(to_jsonable(k, max_depth - depth)))


def _finite_array(o: Any) -> bool:
    """A numeric numpy array without NaN or infinities: its ``tolist()`` is plain JSON already, so
    millions of elements are not walked one by one (the redaction path)."""
    kind = getattr(getattr(o, "dtype", None), "kind", None)
    if type(o).__module__ != "numpy" or kind not in ("i", "u", "b", "f"):
        return False
    if kind != "f":
        return True
    import numpy as np

    return bool(np.isfinite(o).all())


def to_jsonable(value: Any, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Plain JSON-safe structure (dict/list/str/int/float/bool/None) for any value, never raising."""
    path: set[int] = set()

    def walk(o: Any, depth: int) -> Any:
        if o is None or isinstance(o, (str, bool, int)) and not isinstance(o, enum.Enum):
            return o
        leaf = _convert_leaf(o)
        if leaf is not _NOT_LEAF:
            if isinstance(leaf, (list, dict)):  # numpy arrays, pandas frames: may hold NaN
                return leaf if _finite_array(o) else walk(leaf, depth)
            return leaf
        if depth >= max_depth:
            return "<max depth>"
        oid = id(o)
        if oid in path:
            return "<cycle>"
        path.add(oid)
        try:
            if isinstance(o, dict):
                out = {}
                for k, v in o.items():
                    out[_key(k, depth, max_depth)] = walk(v, depth + 1)
                return out
            if isinstance(o, (list, tuple)):
                return [walk(v, depth + 1) for v in o]
            if isinstance(o, (set, frozenset)):
                items = [walk(v, depth + 1) for v in o]
                return sorted(items, key=_dumps_plain)
            view = _container_view(o)
            if isinstance(view, str):
                return view
            return walk(view, depth)
        except Exception:  # a container that fails while iterated (a raising __iter__, say)
            return _fallback_repr(o)
        finally:
            path.discard(oid)

    return walk(value, 0)


