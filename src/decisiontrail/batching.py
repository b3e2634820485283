"""Packing a batched predict into ``model.decision`` events, a chunk of rows per event.

A span event per row costs ~300x what sklearn spends per row, so a batch is packed: each event
holds up to ``chunk_rows`` rows, its input is ``{"columns": [...] | null, "rows": [...]}``, its output
the list of per-row outputs, and ``decision.label`` / ``decision.score`` are arrays aligned with the
rows. Readers expand an event back into one decision per row (store/reader.py). A chunk whose text
would pass the batch size cap is split in two until it fits; a single row that does not fit is
bounded by its structure (encoding/bounded.py: its large cells replaced by markers, the rest whole,
``{"columns", "rows"}`` kept) and the replaced paths are named in ``decision.truncated``, so nothing
is lost without the record saying so. Labels are bounded like every attribute (encoding/attributes.py).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .conventions import DecisionAttributes as D
from .encoding import Bounded, FieldEncoder, bound_string, canonical_json, sha256_hex, to_jsonable

if TYPE_CHECKING:
    from .recorder import RecorderSettings

__all__ = ["BatchEncoder", "as_rows"]

CHUNK_ROWS = 256
BATCH_MAX_CHARS = 262_144  # per event; a gRPC message to the collector is 4 MiB by default
_VECTOR_MIN = 64  # numpy's per-call overhead (~1 µs a ufunc) pays off on labels and scores from here


def as_rows(data: Any, lazy: bool = False) -> tuple[list[str] | None, Any]:
    """(column names or None, list of rows) of a DataFrame, array, sparse matrix or sequence.

    With ``lazy``, the rows of a numpy array (or of a DataFrame's values) stay an array, which the
    encoder turns into lists one chunk at a time: the Python objects of a whole batch never live at
    once, so a large batch does not promote thousands of row lists and set off full garbage
    collections (measured: 100+ ms pauses on a 10,000-row batch).
    """
    module = type(data).__module__
    if module.startswith("pandas"):
        columns = [str(c) for c in data.columns] if hasattr(data, "columns") else None
        values = data.to_numpy()
        return columns, values if lazy and values.ndim >= 1 else values.tolist()
    if module.startswith("scipy") and hasattr(data, "toarray"):
        return None, data.toarray().tolist()
    if lazy and module == "numpy" and getattr(data, "ndim", 0) >= 1:
        return None, data
    if hasattr(data, "tolist"):
        rows = data.tolist()
        return None, rows if isinstance(rows, list) else [rows]
    return None, list(data)


def _part(rows: Any, start: int, end: int) -> list[Any]:
    part = rows[start:end]
    return part if isinstance(part, list) else part.tolist()


def _scores(values: Sequence[Any] | None, n: int) -> list[float] | None:
    if values is None:
        return None
    if n >= _VECTOR_MIN and type(values).__module__ == "numpy" and getattr(values, "ndim", 0) == 1:
        import numpy as np

        arr = np.asarray(values, dtype=float)
        if len(arr) != n:
            raise ValueError(f"{len(arr)} scores for {n} rows")
        return list(np.where(np.isfinite(arr), arr, -1.0).tolist())
    out = [float(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]
    if len(out) != n:
        raise ValueError(f"{len(out)} scores for {n} rows")
    # OTLP arrays hold no NaN/Inf for every backend: a non-finite score becomes -1 and stays in the output.
    return [v if math.isfinite(v) else -1.0 for v in out]


def _labels(values: Sequence[Any] | None, n: int) -> list[str] | None:
    if values is None:
        return None
    kind = getattr(getattr(values, "dtype", None), "kind", None)
    if n >= _VECTOR_MIN and kind in ("U", "i", "u", "b") and getattr(values, "ndim", 0) == 1:
        # numpy strings are str already; integers and booleans print as str() would print them
        arr: Any = values
        raw = arr.tolist() if kind == "U" else arr.astype(str).tolist()
        if len(raw) != n:
            raise ValueError(f"{len(raw)} labels for {n} rows")
        return list(raw)
    raw = values.tolist() if hasattr(values, "tolist") else list(values)
    if len(raw) != n:
        raise ValueError(f"{len(raw)} labels for {n} rows")
    return [v if isinstance(v, str) else str(v) for v in raw]


def _bound_labels(labels: list[str] | None, limit: int) -> list[int]:
    """Cut (in place) the labels longer than ``limit``; the indexes of those cut."""
    if labels is None or all(len(v) <= limit for v in labels):
        return []
    cut = [i for i, v in enumerate(labels) if len(v) > limit]
    for i in cut:
        labels[i] = bound_string(labels[i], limit)[0]
    return cut


class BatchEncoder:
    def __init__(self, settings: RecorderSettings, chunk_rows: int = CHUNK_ROWS,
                 max_chars: int = BATCH_MAX_CHARS) -> None:
        self.settings = settings
        self.chunk_rows = chunk_rows
        self.max_chars = max(max_chars, settings.max_chars)
        self.fields = FieldEncoder(self.max_chars, settings.max_depth)

    def _redact_rows(self, columns: list[str] | None, rows: list[Any], redacted: list[str]) -> list[Any]:
        policy = self.settings.redaction
        if not policy.active:
            return rows
        if columns is not None:
            hit = [(i, c.lower()) for i, c in enumerate(columns)
                   if c.lower() in policy.redact_keys or c.lower() in policy.hash_keys]
            if not hit:
                return rows
            rows = [list(r) for r in rows]
            for i, c in hit:
                redacted.append(f"input.{columns[i]}")
                for r in rows:
                    r[i] = "[REDACTED]" if c in policy.redact_keys else policy.pseudonym(r[i])
            return rows
        return [policy.apply(to_jsonable(r), "input", redacted) if isinstance(r, dict) else r for r in rows]

    def _field(self, c: dict[str, Any], keys: tuple[str, str], name: str, truncated: list[str], text: str,
               value: Callable[[], Any]) -> str:
        """The stored text of one field of a chunk: whole, or bounded with the full text's hash
        (and reference, with a payload store), as the recorder does for a single decision."""
        if len(text) <= self.max_chars:  # the export thread hashes the stored text
            return text
        encoded = self.fields.of_text(value(), text, name)
        if not isinstance(encoded, Bounded):
            return encoded
        c[keys[0]] = sha256_hex(encoded.full)
        truncated.extend(encoded.cut)
        store = self.settings.payload_store
        if store is not None:
            problem = store.offload(c, keys[1], encoded.full)
            if problem:
                c[D.ERROR] = f"{c[D.ERROR]}; {problem}" if D.ERROR in c else problem
        return encoded.text

    def encode(self, data: Any, outputs: Any, labels: Sequence[Any] | None,
               scores: Sequence[float] | None) -> list[dict[str, Any]]:
        columns, rows = as_rows(data, lazy=not self.settings.redaction.active)
        _, outs = as_rows(outputs, lazy=True)
        n = len(rows)
        if len(outs) != n:
            raise ValueError(f"{len(outs)} outputs for {n} rows")
        label_list = _labels(labels, n)
        long_labels = _bound_labels(label_list, self.settings.max_chars)
        score_list = _scores(scores, n)
        redacted: list[str] = []
        rows = self._redact_rows(columns, rows, redacted)
        redacted = sorted(set(redacted))
        chunks: list[dict[str, Any]] = []
        start = 0
        while start < n:
            size = min(self.chunk_rows, n - start)
            while True:
                end = start + size
                text_in = canonical_json({"columns": columns, "rows": _part(rows, start, end)})
                text_out = canonical_json(_part(outs, start, end))
                if size == 1 or len(text_in) + len(text_out) <= self.max_chars:
                    break
                size = max(1, size // 2)
            c: dict[str, Any] = {D.BATCH_INDEX: start, D.BATCH_COUNT: end - start}
            truncated: list[str] = []
            c[D.INPUT] = self._field(c, (D.INPUT_HASH, D.INPUT_REF), "input", truncated, text_in,
                                     lambda: {"columns": columns, "rows": _part(rows, start, end)})
            c[D.OUTPUT] = self._field(c, (D.OUTPUT_HASH, D.OUTPUT_REF), "output", truncated, text_out,
                                      lambda: _part(outs, start, end))
            if label_list is not None:
                c[D.LABEL] = label_list[start:end]
                truncated += [f"{D.LABEL}[{i - start}]" for i in long_labels if start <= i < end]
            if score_list is not None:
                c[D.SCORE] = score_list[start:end]
            if truncated:
                c[D.TRUNCATED] = truncated
            if redacted:
                c[D.REDACTED] = redacted
            chunks.append(c)
            start = end
        return chunks
