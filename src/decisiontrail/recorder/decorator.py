"""``@audited``: a predict-like function (sync or async) whose every call is one decision."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

from opentelemetry import context, trace
from opentelemetry.trace import Span, Status, StatusCode

from .functions import get_recorder
from .recording import Recorder

__all__ = ["audited"]

_log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def _call_inputs(sig: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The decision's input: the single argument of predict(x), else the bound arguments by name."""
    if len(args) == 1 and not kwargs:
        return args[0]
    if sig is not None:
        try:
            bound = sig.bind_partial(*args, **kwargs)
            return dict(bound.arguments)
        except TypeError:
            pass
    return {"args": list(args), "kwargs": kwargs}


@overload
def audited(fn: F, *, model_name: str | None = None, model_version: str | None = None,
            label: Callable[[Any], Any] | None = None, score: Callable[[Any], float] | None = None,
            explanation: Callable[[Any], Any] | None = None,
            reason_codes: Callable[[Any], Sequence[str]] | None = None) -> F: ...


@overload
def audited(fn: None = None, *, model_name: str | None = None, model_version: str | None = None,
            label: Callable[[Any], Any] | None = None, score: Callable[[Any], float] | None = None,
            explanation: Callable[[Any], Any] | None = None,
            reason_codes: Callable[[Any], Sequence[str]] | None = None) -> Callable[[F], F]: ...


def audited(fn: F | None = None, *, model_name: str | None = None, model_version: str | None = None,
            label: Callable[[Any], Any] | None = None, score: Callable[[Any], float] | None = None,
            explanation: Callable[[Any], Any] | None = None,
            reason_codes: Callable[[Any], Sequence[str]] | None = None) -> Any:
    """Decorate a predict-like function (sync or async): each call is one decision.

    ``label``, ``score``, ``explanation`` and ``reason_codes`` are optional functions of the
    return value. A method's
    ``self`` is not part of the recorded input.
    """

    def decorate(func: F) -> F:
        name = model_name or getattr(func, "__qualname__", getattr(func, "__name__", "model"))
        try:
            sig: inspect.Signature | None = inspect.signature(func)
        except (TypeError, ValueError):
            sig = None
        is_method = bool(sig and next(iter(sig.parameters), None) == "self")

        extractors = [(key, extract) for key, extract in (("label", label), ("score", score),
                                                           ("explanation", explanation),
                                                           ("reason_codes", reason_codes)) if extract is not None]

        def outcome(result: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, extract in extractors:
                try:
                    out[key] = extract(result)
                except Exception as exc:  # a broken extractor must not break the prediction
                    _log.warning("decisiontrail: %s extractor of %s failed: %r", key, name, exc)
            return out

        def split(args: tuple[Any, ...]) -> tuple[Any, ...]:
            return args[1:] if is_method and args else args

        def begin() -> tuple[Recorder, Span, Any]:
            rec = get_recorder()
            span = rec.start_span(rec.identity(name, model_version))
            # attach/detach by hand: trace.use_span is a generator context manager costing ~3 µs
            return rec, span, context.attach(trace.set_span_in_context(span))

        def failed(span: Span, exc: BaseException) -> None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.end()

        def finish(rec: Recorder, span: Span, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
            try:
                rec.record(name, _call_inputs(None, split(args), kwargs), result,
                           version=model_version, span=span, **outcome(result))
            finally:
                span.end()

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                rec, span, token = begin()
                try:
                    try:
                        result = await func(*args, **kwargs)
                    finally:
                        context.detach(token)
                except BaseException as exc:
                    failed(span, exc)
                    raise
                finish(rec, span, args, kwargs, result)
                return result
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            rec, span, token = begin()
            try:
                try:
                    result = func(*args, **kwargs)
                finally:
                    context.detach(token)
            except BaseException as exc:
                failed(span, exc)
                raise
            finish(rec, span, args, kwargs, result)
            return result
        return wrapper  # type: ignore[return-value]

    if fn is not None:
        return decorate(fn)
    return decorate
