"""Audit ONNX Runtime inference: ``InferenceSession.run``, one ``model.decision`` per row.

Usage
-----
Zero code: ``opentelemetry-instrument python app.py`` loads this instrumentor (entry point
``onnxruntime``). In code::

    import decisiontrail
    from decisiontrail.instrumentation.onnxruntime import OnnxRuntimeInstrumentor

    decisiontrail.configure()
    OnnxRuntimeInstrumentor().instrument()
    session = onnxruntime.InferenceSession("loan_model.onnx")
    session.run(None, {"X": batch})      # len(batch) decisions of model "loan_model"

A call is read as a batch when every input and every output has the same first dimension ``n``:
then each of the ``n`` rows is a decision whose input is the row (``{input name: row}`` with several
inputs) and whose output is the row of the output (``{output name: row}`` with several outputs).
Otherwise the call is one decision with the whole feed and outputs. The label is the row of the
first 1-d output whose name contains ``label`` (``label``, ``output_label`` from skl2onnx); the
score is the largest value of the first output whose name contains ``prob``. Rows of more than
``LARGE_ROW_ELEMENTS`` values (images) are recorded as their shape, dtype and sha256.

The model's default name is its file name without extension, else the ONNX graph name; its
artifact hash (``model.artifact.hash``) is the sha256 of the model bytes, computed once per session.
``run_with_ort_values``, ``run_with_iobinding`` and ``run_async`` are not instrumented: their
inputs and outputs live in OrtValues or device memory, which the recorder would have to copy.

Configuration
-------------
``instrument(model_name=..., model_version=...)``, as for the scikit-learn instrumentor
(``decisiontrail.instrumentation._options.InstrumentOptions``); ``register_model(session, ...)``
names one session.

API
---
:class:`OnnxRuntimeInstrumentor`. ``Session.run`` is wrapped when
``onnxruntime.capi.onnxruntime_inference_collection`` is imported; ``uninstrument()`` restores it.
"""

from __future__ import annotations

import hashlib
import os
import weakref
from typing import Any

import wrapt

from .._base import ModelCallWrapper
from .._options import InstrumentOptions
from .._patching import DecisionInstrumentor, Patcher
from .._rows import Extracted, num_rows, rows_of
from .package import _instruments

__all__ = ["OnnxRuntimeInstrumentor"]

_SESSION_MODULE = "onnxruntime.capi.onnxruntime_inference_collection"
_hashes: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()


def session_name(session: Any) -> str | None:
    """The model file's name without extension, else the graph name."""
    path = getattr(session, "_model_path", None)
    if isinstance(path, (str, os.PathLike)) and str(path):
        return os.path.splitext(os.path.basename(str(path)))[0]
    try:
        return str(session.get_modelmeta().graph_name) or None
    except Exception:
        return None


def session_hash(session: Any) -> str | None:
    """``sha256:<hex>`` of the model bytes (once per session)."""
    try:
        if session in _hashes:
            return _hashes[session]
    except TypeError:
        return None
    digest: str | None = None
    data = getattr(session, "_model_bytes", None)
    path = getattr(session, "_model_path", None)
    try:
        if isinstance(data, (bytes, bytearray)):
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
        elif path and os.path.isfile(path):
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            digest = "sha256:" + h.hexdigest()
    except OSError:
        digest = None
    _hashes[session] = digest
    return digest


def _column(value: Any) -> list[Any]:
    return value.tolist() if hasattr(value, "tolist") else list(value)


def _max_score(value: Any) -> Any:
    """Per-row largest probability of a 2-d array or of a list of {class: probability} maps."""
    import numpy as np

    if isinstance(value, list):
        return [max(v.values()) if isinstance(v, dict) and v else None for v in value] \
            if all(isinstance(v, dict) and v for v in value) else None
    arr = np.asarray(value)
    return arr.max(axis=1) if arr.ndim == 2 and arr.shape[1] else None


def run_extractor(session: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Extracted:
    output_names = args[0] if args else kwargs.get("output_names")
    feed = args[1] if len(args) > 1 else kwargs.get("input_feed")
    names = list(output_names) if output_names else [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, result))
    feed = dict(feed) if isinstance(feed, dict) else {"input": feed}
    sizes = {num_rows(v) for v in feed.values()} | {num_rows(v) for v in outputs.values()}
    if len(sizes) != 1 or None in sizes or not feed or not outputs:
        return Extracted(feed, outputs, single=True)
    n = sizes.pop()
    assert n is not None
    labels = scores = None
    for name, value in outputs.items():
        lower = name.lower()
        if labels is None and "label" in lower and getattr(value, "ndim", 0) == 1:
            labels = value
        elif scores is None and "prob" in lower:
            scores = _max_score(value)
    if len(feed) == 1:
        rows = rows_of(next(iter(feed.values())))
    else:
        cols = {k: _column(rows_of(v)) for k, v in feed.items()}
        rows = [{k: c[i] for k, c in cols.items()} for i in range(n)]
    if len(outputs) == 1:
        out: Any = next(iter(outputs.values()))
    else:
        ocols = {k: _column(v) for k, v in outputs.items()}
        out = [{k: c[i] for k, c in ocols.items()} for i in range(n)]
    return Extracted(rows, out, n, labels, scores)


class OnnxRuntimeInstrumentor(DecisionInstrumentor):
    """Records ONNX Runtime inference as decisions; see the module docstring."""

    _instruments = _instruments

    def _new_state(self, options: InstrumentOptions) -> ModelCallWrapper:
        return ModelCallWrapper(options, default_name=session_name, artifact_hash=session_hash)

    def _install(self, state: ModelCallWrapper, patcher: Patcher) -> None:
        def on_import(module: Any) -> None:
            if state.active:  # hooks of an earlier instrument() stay registered: they do nothing
                patcher.wrap_method(module.Session, "run", state.recording(run_extractor))

        wrapt.register_post_import_hook(on_import, _SESSION_MODULE)
