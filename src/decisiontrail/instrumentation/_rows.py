"""What one model call decided: its rows, outputs, labels and scores, read bounded and cheaply."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["LARGE_ROW_ELEMENTS", "Extracted", "Extractor", "num_rows", "rows_of", "classifier_outcome"]

LARGE_ROW_ELEMENTS = 4096
"""A row of an array with more elements than this (an image, an embedding sequence) is recorded as
``{"$ndarray": {"shape", "dtype", "sha256"}}``: its digest, not its values, so recording stays
bounded in time and memory; the hash still identifies the exact input."""

_SMALL_BATCH = 16


@dataclass
class Extracted:
    """One call read as decisions: ``n`` rows of ``rows`` with their ``outputs`` (batched), or one
    decision (``single``) whose input is ``rows`` and output ``outputs``."""

    rows: Any
    outputs: Any
    n: int = 1
    labels: Any = None
    scores: Any = None
    single: bool = False


Extractor = Callable[[Any, tuple[Any, ...], dict[str, Any], Any], Extracted]
"""``(instance, args, kwargs, result) -> Extracted``: how a wrapped method's call reads as decisions."""


def num_rows(data: Any) -> int | None:
    """Rows of a batch-like input (array, DataFrame, sparse matrix, list), or None."""
    shape = getattr(data, "shape", None)
    if shape is not None:
        try:
            return int(shape[0]) if len(shape) >= 1 else None
        except (TypeError, IndexError):
            return None
    if isinstance(data, (list, tuple)):
        return len(data)
    return None


def _digest_rows(arr: Any) -> list[dict[str, Any]]:
    import numpy as np

    shape, dtype = list(arr.shape[1:]), str(arr.dtype)
    out = []
    for row in arr:
        h = hashlib.sha256(np.ascontiguousarray(row).tobytes()).hexdigest()
        out.append({"$ndarray": {"shape": shape, "dtype": dtype, "sha256": "sha256:" + h}})
    return out


def _sparse_rows(matrix: Any) -> list[dict[str, Any]]:
    """Rows of a scipy sparse matrix as ``{column index: value}`` of the stored entries: a wide
    sparse matrix (a TF-IDF vocabulary) is never densified."""
    csr = matrix.tocsr()
    indptr, indices, data = csr.indptr.tolist(), csr.indices.tolist(), csr.data.tolist()
    return [dict(zip(map(str, indices[indptr[i]:indptr[i + 1]]), data[indptr[i]:indptr[i + 1]]))
            for i in range(csr.shape[0])]


def rows_of(data: Any) -> Any:
    """``data`` in the form the batch encoder reads row by row, bounded: sparse matrices as per-row
    ``{column: value}`` objects, rows of huge arrays as digests (:data:`LARGE_ROW_ELEMENTS`)."""
    module = type(data).__module__
    if module.startswith("scipy") and hasattr(data, "tocsr"):
        return _sparse_rows(data)
    shape = getattr(data, "shape", None)
    if module.startswith("numpy") and shape is not None and len(shape) >= 2:
        per_row = 1
        for d in shape[1:]:
            per_row *= int(d)
        if per_row > LARGE_ROW_ELEMENTS:
            return _digest_rows(data)
    return data


def classifier_outcome(model: Any, proba: Any, log: bool = False) -> tuple[Any, Any]:
    """(labels, scores) of a probability matrix: the argmax class of each row (``classes_`` when
    the model has them) and its probability."""
    import numpy as np

    p = np.asarray(proba)
    if p.ndim != 2 or p.shape[0] == 0:
        return None, None
    classes = getattr(model, "classes_", None)
    if classes is not None and len(classes) != p.shape[1]:
        classes = None
    if p.shape[0] <= _SMALL_BATCH:  # a few rows: plain Python beats numpy's per-call overhead
        rows = p.tolist()
        idx_list = [max(range(len(r)), key=r.__getitem__) for r in rows]
        top = [r[j] for r, j in zip(rows, idx_list)]
        names: Any = classes.tolist() if classes is not None and hasattr(classes, "tolist") else classes
        return ([names[j] for j in idx_list] if names is not None else idx_list,
                [math.exp(v) for v in top] if log else top)
    idx = p.argmax(axis=1)
    scores = p[np.arange(p.shape[0]), idx]
    if log:
        scores = np.exp(scores)
    labels = np.asarray(classes)[idx] if classes is not None else idx
    return labels, scores
