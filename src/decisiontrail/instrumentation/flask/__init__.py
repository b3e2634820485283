"""Tell the caller which decisions answered its request: a ``decision-id`` response header.

Usage
-----
Zero code: ``opentelemetry-instrument python app.py`` loads this instrumentor (entry point
``decisiontrail_flask``, next to OpenTelemetry's own ``flask`` instrumentation, which makes the
request span the decisions hang under). In code::

    from decisiontrail.instrumentation.flask import FlaskDecisionIdInstrumentor

    FlaskDecisionIdInstrumentor().instrument()
    app = flask.Flask(__name__)

``Flask.wsgi_app`` is wrapped on the class, so every application gets the header; an application
that OpenTelemetry's Flask instrumentation wrapped *before* this instrumentor ran keeps a reference
to the unwrapped method (``opentelemetry-instrument`` loads both before the application starts).

Every response of a request during which instrumented model calls made decisions carries::

    decision-id: 0190f3c2-6a1b-7c00-8004-5f2e9d1b3a77, 0190f3c2-6a1b-7c00-8005-5f2e9d1b3a77
    decision-count: 2

in the order they were made, at most ``max_ids`` ids (``decision-count`` says how many there were:
row ``i`` of a batch is ``decisiontrail.ids.offset_id(first id, i)``, and every decision of the
request carries its trace id). Responses without decisions get neither header. The ids are
collected with ``decisiontrail.instrumentation.collect_decisions()`` around ``Flask.wsgi_app``:
the same scope serves other frameworks in a few lines.

Why a header: the application keeps no decisiontrail code, the ids travel with the answer they
belong to, and the body stays the application's. The trace id the application can read from the
OpenTelemetry API (``trace.get_current_span().get_span_context().trace_id``).

Subjects and business keys, with zero code
------------------------------------------
With ``DECISIONTRAIL_FLASK_SUBJECT`` and/or ``DECISIONTRAIL_FLASK_KEYS`` set (or the ``subject`` /
``keys`` options), each request's view runs inside ``decisiontrail.using_subject(...)`` with values
read from the request, so every decision it makes carries ``enduser.pseudo.id`` (or ``enduser.id``)
and ``decision.key.<name>``, hashed or redacted by the recorder's policy::

    DECISIONTRAIL_FLASK_SUBJECT='json:applicant_id|header:X-Applicant-Id'
    DECISIONTRAIL_FLASK_KEYS='loan_id=json:loan_id,order_id=header:X-Order-Id'

Sources are ``header:``, ``json:`` (a dotted path into the body), ``query:``, ``form:`` and ``path:``
(see ``_mapping.py``); ``Flask.dispatch_request`` is wrapped to open the scope. One subject per
request: a request deciding about several subjects needs ``using_subject`` in the code.

Configuration
-------------
``instrument(header="decision-id", count_header="decision-count", max_ids=64, subject=None, keys=None)``;
``subject`` and ``keys`` override the environment variables above.

API
---
:class:`FlaskDecisionIdInstrumentor`; ``uninstrument()`` restores ``Flask.wsgi_app`` (and
``Flask.dispatch_request``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import logging

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from ...subjects import using_subject
from .._ids import collect_decisions
from .._options import check_dependencies
from .._patching import Patcher
from ._mapping import RequestMapping
from .package import _instruments

__all__ = ["FlaskDecisionIdInstrumentor"]


_log = logging.getLogger(__name__)


class _State:
    def __init__(self, header: str, count_header: str, max_ids: int, mapping: RequestMapping) -> None:
        self.header, self.count_header, self.max_ids = header, count_header, max_ids
        self.mapping = mapping
        self.active = True


def _bind(environ: Any, start_response: Any) -> tuple[Any, Any]:
    return environ, start_response


def _wsgi_app_wrapper(state: _State) -> Any:
    def with_decision_ids(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not state.active:
            return wrapped(*args, **kwargs)
        environ, start_response = _bind(*args, **kwargs)

        with collect_decisions() as made:

            def start_response_with_ids(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
                if made.count:
                    headers = [*headers, (state.header, ", ".join(made.ids(state.max_ids))),
                               (state.count_header, str(made.count))]
                return start_response(status, headers, *exc_info)

            return wrapped(environ, start_response_with_ids)

    return with_decision_ids


def _dispatch_wrapper(state: _State) -> Any:
    def with_subject(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not state.active:
            return wrapped(*args, **kwargs)
        try:
            import flask

            subject, keys = state.mapping.read(flask.request)
        except Exception as exc:  # never break the request over its audit keys
            _log.warning("decisiontrail: reading the request's subject and keys failed: %r", exc)
            return wrapped(*args, **kwargs)
        if subject is None and not keys:
            return wrapped(*args, **kwargs)
        with using_subject(subject, **keys):
            return wrapped(*args, **kwargs)

    return with_subject


class FlaskDecisionIdInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Adds the ids of the decisions a request made to its response; see the module docstring."""

    _state: _State | None = None
    _patcher: Patcher | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        check_dependencies(_instruments)
        unknown = set(kwargs) - {"header", "count_header", "max_ids", "subject", "keys"}
        if unknown:
            raise TypeError(f"unexpected option(s): {', '.join(sorted(unknown))}")
        max_ids = kwargs.get("max_ids", 64)
        if not isinstance(max_ids, int) or max_ids < 1:
            raise TypeError(f"max_ids must be a positive int, not {max_ids!r}")
        mapping = RequestMapping.create(kwargs.get("subject"), kwargs.get("keys"))
        state = _State(str(kwargs.get("header", "decision-id")),
                       str(kwargs.get("count_header", "decision-count")), max_ids, mapping)
        patcher = Patcher()
        self._state, self._patcher = state, patcher

        def on_import(module: Any) -> None:
            if state.active:  # hooks of an earlier instrument() stay registered: they do nothing
                patcher.wrap_method(module.Flask, "wsgi_app", _wsgi_app_wrapper(state))
                if state.mapping:
                    patcher.wrap_method(module.Flask, "dispatch_request", _dispatch_wrapper(state))

        wrapt.register_post_import_hook(on_import, "flask.app")

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._state is not None:
            self._state.active = False
        if self._patcher is not None:
            self._patcher.unwrap_all()
        self._state = self._patcher = None

    @property
    def wrapped(self) -> list[tuple[Any, str]]:
        return self._patcher.wrapped if self._patcher is not None else []
