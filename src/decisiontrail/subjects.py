"""Who a decision is about: a subject id and business keys for every decision made in a scope.

In the spirit of OpenInference's ``using_attributes`` and OpenTelemetry baggage, the values live in
the OpenTelemetry context, so they follow the request through the code that runs inside it::

    with decisiontrail.using_subject("A-1029", loan_id="L-77"):
        model.predict_proba(X)       # every decision carries enduser.pseudo.id and decision.key.loan_id

Scopes nest: an inner scope keeps the outer subject unless it names one, and adds its keys to the
outer ones. Values are recorded as strings (``123`` and ``"123"`` are the same subject), through the
recorder's redaction policy (conventions.SubjectAttributes):

- the subject id is written as ``enduser.pseudo.id`` = its keyed pseudonym (HMAC-SHA256 with the
  policy's hash secret) when the policy has a secret, else as ``enduser.id`` in clear;
- a business key is written as ``decision.key.<name>``: ``[REDACTED]`` when ``<name>`` is one of the
  policy's redact keys, its pseudonym when one of its hash keys, else in clear.

Like every attribute the application gives, the values are bounded (``encoding.bound_attribute``,
the recorder's ``max_chars``; a cut one is named in ``decision.truncated``), after hashing: a
pseudonym is always of the whole value.

``decisiontrail pseudonym VALUE`` and ``decisiontrail query --subject VALUE`` compute the same
pseudonym from ``DECISIONTRAIL_HASH_SECRET``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context

from .conventions import DecisionAttributes as D
from .conventions import SubjectAttributes as U
from .encoding import bound_attribute
from .redaction import REDACTED, RedactionPolicy, pseudonym

__all__ = ["Subject", "using_subject", "current_subject", "subject_attributes", "pseudonym_of"]

_KEY = context.create_key("decisiontrail-subject")
_MAX_KEY = 200  # characters of a business key's name (its attribute name is decision.key.<name>)
_opened = False  # a scope was opened in this process: until then every decision skips the lookup


def pseudonym_of(value: Any, secret: str | bytes) -> str:
    """The pseudonym of a subject id or key (as a string) under ``secret``: what the recorder stores."""
    return pseudonym(_text(value), secret.encode() if isinstance(secret, str) else secret)


class Subject:
    """The subject id and business keys of a scope; the attributes they give under a policy are
    computed once per policy and reused by every decision of the scope."""

    __slots__ = ("subject_id", "keys", "_cache")

    def __init__(self, subject_id: str | None, keys: Mapping[str, str]) -> None:
        self.subject_id = subject_id
        self.keys = dict(keys)
        self._cache: tuple[RedactionPolicy, int, dict[str, Any]] | None = None

    def attributes(self, policy: RedactionPolicy, max_chars: int) -> dict[str, Any]:
        cached = self._cache
        if cached is not None and cached[0] is policy and cached[1] == max_chars:
            return cached[2]
        attrs = self._bounded(self._attributes(policy), max_chars)
        self._cache = (policy, max_chars, attrs)
        return attrs

    @staticmethod
    def _bounded(attrs: dict[str, Any], max_chars: int) -> dict[str, Any]:
        truncated: list[str] = []
        out = {k: bound_attribute(k, v, max_chars, truncated) if k != D.REDACTED else v
               for k, v in attrs.items()}
        if truncated:
            out[D.TRUNCATED] = truncated
        return out

    def _attributes(self, policy: RedactionPolicy) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        redacted: list[str] = []
        if self.subject_id is not None:
            if policy.hash_secret:
                attrs[U.PSEUDO_ID] = pseudonym_of(self.subject_id, policy.hash_secret)
            else:
                attrs[U.ID] = self.subject_id
        for name, value in self.keys.items():
            lname = name.lower()
            if lname in policy.redact_keys:
                value = REDACTED
                redacted.append(f"key.{name}")
            elif lname in policy.hash_keys:
                value = pseudonym_of(value, policy.hash_secret)
                redacted.append(f"key.{name}")
            attrs[f"{U.KEY}.{name}"] = value
        if redacted:
            attrs[D.REDACTED] = redacted
        return attrs


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


@contextmanager
def using_subject(subject_id: Any = None, /, **keys: Any) -> Iterator[Subject]:
    """Every decision recorded in this block (this thread or task, and code it calls) carries
    ``subject_id`` and the business ``keys`` (``loan_id="L-77"``); see the module docstring.
    ``None`` values are left out."""
    outer = current_subject()
    sid = _text(subject_id) if subject_id is not None else (outer.subject_id if outer else None)
    merged = dict(outer.keys) if outer else {}
    merged.update({str(k)[:_MAX_KEY]: _text(v) for k, v in keys.items() if v is not None})
    scope = Subject(sid, merged)
    global _opened
    _opened = True
    token = context.attach(context.set_value(_KEY, scope))
    try:
        yield scope
    finally:
        context.detach(token)


def current_subject() -> Subject | None:
    """The innermost :func:`using_subject` scope of the current context, or None."""
    value = context.get_value(_KEY)
    return value if isinstance(value, Subject) else None


def subject_attributes(policy: RedactionPolicy, max_chars: int) -> dict[str, Any] | None:
    """The attributes the current scope adds to a decision (bounded to ``max_chars``), or None
    outside any scope."""
    if not _opened:
        return None
    scope = context.get_value(_KEY)
    if scope is None or not isinstance(scope, Subject):
        return None
    return scope.attributes(policy, max_chars)
