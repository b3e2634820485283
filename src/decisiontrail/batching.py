"""Packing a batched predict into ``model.decision`` events, a chunk of rows per event.

A span event per row costs ~300x what sklearn spends per row, so a batch is packed: each event
holds up to ``chunk_rows`` rows, its input is ``{"columns": [...] | null, "rows": [...]}``, its output
the list of per-row outputs, and ``decision.label`` / ``decision.score`` are arrays aligned with the
rows. Readers expand an event back into one decision per row (store/reader.py). A chunk whose text
would pass the batch size cap is split in two until it fits; a single row that does not fit is cut
and named in ``decision.truncated``, so nothing is lost without the record saying so.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from .conventions import DecisionAttributes as D
from .encoding import canonical_json, sha256_hex, to_jsonable

if TYPE_CHECKING:
    from .recorder import RecorderSettings

__all__ = ["BatchEncoder", "as_rows"]

CHUNK_ROWS = 256
BATCH_MAX_CHARS = 262_144  # per event; a gRPC message to the collector is 4 MiB by default


def as_rows(data: Any) -> tuple[list[str] | None, list[Any]]:
    """(column names or None, list of rows) of a DataFrame, array, sparse matrix or sequence."""
    module = type(data).__module__
    if module.startswith("pandas"):
        if hasattr(data, "columns"):
            return [str(c) for c in data.columns], data.to_numpy().tolist()
        return None, data.to_numpy().tolist()
    if module.startswith("scipy") and hasattr(data, "toarray"):
        return None, data.toarray().tolist()
    if hasattr(data, "tolist"):
        rows = data.tolist()
        return None, rows if isinstance(rows, list) else [rows]
    return None, list(data)


def _scores(values: Sequence[Any] | None, n: int) -> list[float] | None:
    if values is None:
        return None
    out = [float(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]
    if len(out) != n:
        raise ValueError(f"{len(out)} scores for {n} rows")
    # OTLP arrays hold no NaN/Inf for every backend: a non-finite score becomes -1 and stays in the output.
    return [v if math.isfinite(v) else -1.0 for v in out]


def _labels(values: Sequence[Any] | None, n: int) -> list[str] | None:
    if values is None:
        return None
    raw = values.tolist() if hasattr(values, "tolist") else list(values)
    if len(raw) != n:
        raise ValueError(f"{len(raw)} labels for {n} rows")
    return [v if isinstance(v, str) else str(v) for v in raw]


class BatchEncoder:
    def __init__(self, settings: RecorderSettings, chunk_rows: int = CHUNK_ROWS,
                 max_chars: int = BATCH_MAX_CHARS) -> None:
        self.settings = settings
        self.chunk_rows = chunk_rows
        self.max_chars = max(max_chars, settings.max_chars)

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

    def encode(self, data: Any, outputs: Any, labels: Sequence[Any] | None,
               scores: Sequence[float] | None) -> list[dict[str, Any]]:
        columns, rows = as_rows(data)
        _, outs = as_rows(outputs)
        n = len(rows)
        if len(outs) != n:
            raise ValueError(f"{len(outs)} outputs for {n} rows")
        label_list = _labels(labels, n)
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
                text_in = canonical_json({"columns": columns, "rows": rows[start:end]})
                text_out = canonical_json(outs[start:end])
                if size == 1 or len(text_in) + len(text_out) <= self.max_chars:
                    break
                size = max(1, size // 2)
            c: dict[str, Any] = {D.BATCH_INDEX: start, D.BATCH_COUNT: end - start}
            truncated = []
            if len(text_in) > self.max_chars:  # otherwise the export thread hashes the stored text
                c[D.INPUT_HASH] = sha256_hex(text_in)
                text_in, truncated = text_in[: self.max_chars], ["input"]
            if len(text_out) > self.max_chars:
                text_out, truncated = text_out[: self.max_chars], truncated + ["output"]
            c[D.INPUT] = text_in
            c[D.OUTPUT] = text_out
            if label_list is not None:
                c[D.LABEL] = label_list[start:end]
            if score_list is not None:
                c[D.SCORE] = score_list[start:end]
            if truncated:
                c[D.TRUNCATED] = truncated
            if redacted:
                c[D.REDACTED] = redacted
            chunks.append(c)
            start = end
        return chunks
