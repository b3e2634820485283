"""The process's recorder and the functional API over it: ``record_decision`` and the ``decision``
context manager (decorator.py has ``audited``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from .recording import Recorder
from .settings import AttributeValue, RecorderSettings

__all__ = ["get_recorder", "set_recorder", "record_decision", "decision", "DecisionHandle"]

_recorder: Recorder | None = None
_recorder_lock = threading.Lock()


def get_recorder() -> Recorder:
    global _recorder
    if _recorder is None:
        with _recorder_lock:
            if _recorder is None:
                _recorder = Recorder(RecorderSettings.from_env())
    return _recorder


def set_recorder(recorder: Recorder | None) -> None:
    global _recorder
    _recorder = recorder


def record_decision(model: Any, inputs: Any, output: Any, *, version: str | None = None,
                    label: Any = None, score: float | None = None, explanation: Any = None,
                    reason_codes: Sequence[str] | None = None,
                    attributes: Mapping[str, AttributeValue] | None = None) -> str:
    """Record one decision and return its id.

    ``model`` is a name or a model object (its registered name, else its class name). The event goes
    on the current span when it is recording, else on a new ``predict <model>`` span.
    """
    return get_recorder().record(
        model, inputs, output, version=version, label=label, score=score,
        explanation=explanation, reason_codes=reason_codes, attributes=attributes,
    )


class DecisionHandle:
    """What ``with decision(...) as d`` gives: set ``output`` (and optionally the rest) in the block."""

    def __init__(self, inputs: Any) -> None:
        self.inputs = inputs
        self.output: Any = _UNSET
        self.label: Any = None
        self.score: float | None = None
        self.explanation: Any = None
        self.reason_codes: Sequence[str] | None = None
        self.attributes: dict[str, AttributeValue] = {}
        self.decision_id: str | None = None
        self.span: Span | None = None


_UNSET: Any = object()


@contextmanager
def decision(model: Any, inputs: Any = None, *, version: str | None = None) -> Iterator[DecisionHandle]:
    """Open a ``predict <model>`` span; on exit record the decision with the output set in the block.

    If the block raises before setting ``output``, the exception is recorded on the span and no
    decision is made; the exception propagates untouched.
    """
    rec = get_recorder()
    ident = rec.identity(model, version)
    handle = DecisionHandle(inputs)
    span = rec.start_span(ident)
    try:
        with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            yield handle
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        if handle.output is not _UNSET:
            handle.decision_id = _record_handle(rec, model, version, handle, span)
        raise
    else:
        handle.decision_id = _record_handle(rec, model, version, handle, span)
    finally:
        span.end()


def _record_handle(rec: Recorder, model: Any, version: str | None, h: DecisionHandle, span: Span) -> str:
    output = None if h.output is _UNSET else h.output
    return rec.record(model, h.inputs, output, version=version, span=span, label=h.label, score=h.score,
                      explanation=h.explanation, reason_codes=h.reason_codes, attributes=h.attributes or None)

