"""Which request fields and headers are a decision's subject and business keys (zero code).

A *source* is ``KIND:NAME``; several joined by ``|`` are tried in order, the first one present wins:

- ``header:X-Applicant-Id``: a request header;
- ``json:applicant.id``: a field of the JSON body, a dotted path (``applications.0.applicant_id``
  indexes a list);
- ``query:applicant``: a query-string parameter; ``form:applicant``: a form field;
- ``path:applicant_id``: a URL rule variable (``/applicants/<applicant_id>/loans``).

``DECISIONTRAIL_FLASK_SUBJECT`` is the subject's source (``json:applicant_id|header:X-Applicant-Id``);
``DECISIONTRAIL_FLASK_KEYS`` names the business keys, ``name=source`` joined by commas
(``loan_id=json:loan_id,order_id=header:X-Order-Id``). A bad value warns once and is ignored.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RequestMapping", "Source", "parse_sources", "parse_keys"]

_log = logging.getLogger(__name__)
KINDS = ("header", "json", "query", "form", "path")
SUBJECT_ENV = "DECISIONTRAIL_FLASK_SUBJECT"
KEYS_ENV = "DECISIONTRAIL_FLASK_KEYS"


@dataclass(frozen=True)
class Source:
    kind: str
    name: str

    def read(self, request: Any) -> Any:
        if self.kind == "header":
            return request.headers.get(self.name)
        if self.kind == "query":
            return request.args.get(self.name)
        if self.kind == "form":
            return request.form.get(self.name) if request.mimetype in (
                "application/x-www-form-urlencoded", "multipart/form-data") else None
        if self.kind == "path":
            return (request.view_args or {}).get(self.name)
        value = request.get_json(silent=True) if request.is_json else None  # cached: the view reads it again
        for part in self.name.split("."):
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return None
        return value if isinstance(value, (str, int, float, bool)) else None


def parse_sources(text: str) -> tuple[Source, ...]:
    """``kind:name|kind:name`` as sources; ValueError when one is not ``kind:name``."""
    out = []
    for item in text.split("|"):
        kind, sep, name = item.strip().partition(":")
        if not sep or kind not in KINDS or not name:
            raise ValueError(f"{item.strip()!r} is not KIND:NAME with KIND one of {', '.join(KINDS)}")
        out.append(Source(kind, name))
    return tuple(out)


def parse_keys(text: str) -> dict[str, tuple[Source, ...]]:
    """``name=sources,name=sources`` as {key name: sources}."""
    keys = {}
    for item in filter(None, (i.strip() for i in text.split(","))):
        name, sep, sources = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{item!r} is not NAME=KIND:NAME")
        keys[name.strip()] = parse_sources(sources)
    return keys


def _first(sources: tuple[Source, ...], request: Any) -> Any:
    for s in sources:
        value = s.read(request)
        if value is not None and value != "":
            return value
    return None


@dataclass(frozen=True)
class RequestMapping:
    subject: tuple[Source, ...] = ()
    keys: Mapping[str, tuple[Source, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.subject or self.keys)

    @classmethod
    def create(cls, subject: str | None = None, keys: Mapping[str, str] | None = None) -> RequestMapping:
        """Arguments (a bad one raises TypeError) > environment (a bad one warns, ignored)."""
        try:
            parsed_subject = parse_sources(subject) if subject else ()
            parsed_keys = {str(k): parse_sources(v) for k, v in (keys or {}).items()}
        except (ValueError, AttributeError) as exc:
            raise TypeError(f"bad request mapping: {exc}") from None
        if subject is None:
            parsed_subject = _from_env(SUBJECT_ENV, parse_sources, ())
        if keys is None:
            parsed_keys = _from_env(KEYS_ENV, parse_keys, {})
        return cls(parsed_subject, parsed_keys)

    def read(self, request: Any) -> tuple[Any, dict[str, Any]]:
        """(subject id or None, {key: value}) of one request; keys not present are left out."""
        subject = _first(self.subject, request) if self.subject else None
        keys = {}
        for name, sources in self.keys.items():
            value = _first(sources, request)
            if value is not None:
                keys[name] = value
        return subject, keys


def _from_env(name: str, parse: Any, default: Any) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        _log.warning("decisiontrail: %s=%r ignored: %s", name, raw, exc)
        return default
