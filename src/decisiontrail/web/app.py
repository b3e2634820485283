"""The Flask application behind ``decisiontrail serve``."""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFProtect

from ..cli._args import UsageError
from ..store.protocol import open_store
from ..store.query import parse_time
from .integrity import IntegrityIndex
from .source import DecisionSource, Filters
from .views import decisions_on, pretty, waterfall

__all__ = ["create_app", "REVIEW_ACTIONS"]

REVIEW_ACTIONS = ("confirm", "override", "escalate", "annotate")
_FILTER_FIELDS = ("model", "version", "label", "effective_label", "since", "until", "trace_id", "decision_id",
                  "subject", "key")

# Everything the page shows is hostile data (inputs are whatever the caller sent). Templates escape
# it; on top of that the page runs no script at all, so a markup that slipped through still cannot.
_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'")
# The report is the self-contained page of `decisiontrail report` (inline CSS and SVG charts).
_REPORT_CSP = _CSP.replace("style-src 'self'", "style-src 'unsafe-inline'")


def create_app(data: Sequence[str | Path], *, token: str | None = None, page_size: int = 50,
               recorder: Callable[..., str] | None = None, after_review: Callable[[], Any] | None = None,
               source: DecisionSource | None = None, integrity: IntegrityIndex | None = None) -> Flask:
    """The app over the audit store ``data``.

    ``token``: the review token; without one the review endpoint does not exist. ``recorder``: what
    records a review (``decisiontrail.record_review``); ``after_review``: called after recording,
    e.g. ``Configuration.drain`` so the record is in the store when the page reloads. ``integrity``:
    the background verification behind each decision's verdict (one over ``data`` by default).
    """
    app = Flask(__name__)
    app.config.update(SECRET_KEY=os.urandom(32), WTF_CSRF_TIME_LIMIT=None, MAX_CONTENT_LENGTH=64 * 1024)
    CSRFProtect(app)
    src = source or DecisionSource(data)
    checks = integrity or IntegrityIndex(src.open)
    checks.refresh()
    writable = bool(token) and recorder is not None

    @app.after_request
    def _headers(resp: Any) -> Any:
        resp.headers["Content-Security-Policy"] = _REPORT_CSP if request.endpoint == "report" else _CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    @app.teardown_appcontext
    def _close_store(exc: BaseException | None) -> None:
        from flask import g

        store = g.pop("dt_store", None)
        close = getattr(store, "close", None)
        if close is not None:
            close()

    @app.template_filter("pretty")
    def _pretty(value: Any) -> str:
        return pretty(value)

    def filters_from_args() -> tuple[Filters, str | None]:
        values = {k: request.args.get(k, "").strip() for k in _FILTER_FIELDS}
        where: list[tuple[str, str]] = []
        for item in request.args.getlist("where"):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            if not sep:
                return Filters(), f"a field filter takes field=value, not {item!r}"
            where.append((key.strip(), value.strip()))
        for k in ("since", "until"):
            if values[k]:
                try:
                    parse_time(values[k])
                except ValueError:
                    return Filters(), f"{k}: not a time: {values[k]!r} (ISO 8601, or 15m, 2h, 7d ago)"
        filters = Filters(**values, where=tuple(where))
        try:
            filters.query()
        except UsageError as exc:  # a key without NAME=, a redacted key
            return Filters(), str(exc)
        return filters, None

    @app.get("/")
    def search() -> ResponseReturnValue:
        filters, error = filters_from_args()
        try:
            offset = max(0, int(request.args.get("offset", "0")))
        except ValueError:
            offset = 0
        page = src.search(filters, offset, page_size) if error is None else None
        args = {k: v for k, v in request.args.items(multi=True) if k != "offset"}
        base = [(k, v) for k, v in request.args.items(multi=True) if k != "offset"]
        prev_url = next_url = None
        if page is not None and offset > 0:
            prev_url = "?" + urlencode(base + [("offset", str(max(0, offset - page_size)))])
        if page is not None and page.has_more:
            next_url = "?" + urlencode(base + [("offset", str(offset + page_size))])
        return render_template("search.html", filters=filters, page=page, error=error, args=args,
                               prev_url=prev_url, next_url=next_url, where="\n".join(
                                   f"{k}={v}" for k, v in filters.where))

    @app.get("/decisions/<decision_id>")
    def decision(decision_id: str) -> ResponseReturnValue:
        found = src.decision(decision_id)
        if found is None:
            abort(404)
        d, life = found
        spans, spans_from = src.spans(d.trace_id)
        return render_template("decision.html", d=d, life=life, effective_label=life.effective_label(d.label),
                               flat=d.to_dict(), rows=waterfall(spans, d.span_id), spans_from=spans_from,
                               verdict=checks.verdict(d),
                               writable=writable, actions=REVIEW_ACTIONS, decisions_on=decisions_on)

    if writable:
        assert recorder is not None

        @app.post("/decisions/<decision_id>/review")
        def review(decision_id: str) -> ResponseReturnValue:
            given = request.form.get("token", "")
            if not hmac.compare_digest(given.encode(), (token or "").encode()):
                abort(403)
            reviewer = request.form.get("reviewer", "").strip()
            action = request.form.get("action", "")
            if not reviewer or action not in REVIEW_ACTIONS:
                abort(400)
            found = src.decision(decision_id)
            if found is None:
                abort(404)
            d = found[0]
            record_id = recorder(decision_id, reviewer=reviewer, action=action,
                                 label=request.form.get("label", "").strip() or None,
                                 rationale=request.form.get("rationale", "").strip() or None,
                                 trace_id=d.trace_id, span_id=d.span_id)
            if after_review is not None:
                after_review()
            checks.refresh()
            flash(f"review {record_id} recorded")
            return redirect(url_for("decision", decision_id=decision_id), code=303)

    @app.get("/report")
    def report() -> ResponseReturnValue:
        """The charts of ``decisiontrail report`` for the filtered set (extra ``report``)."""
        filters, error = filters_from_args()
        if error is not None:
            abort(400, error)
        try:
            from ..report import collect, render
            from ..store.warehouse.filters import where_sql
        except ImportError as exc:
            abort(404, f"the report needs: pip install 'decisiontrail[report]' ({exc})")
        store = open_store(src.data, src.warehouse, use_warehouse=True)
        where, params = where_sql(filters.query())
        data = collect(store.connection(), where, params)  # type: ignore[attr-defined]
        scope = ", ".join(f"{k} {v}" for k, v in vars(filters).items() if v) or "all decisions"
        return render(data, title="Decision report", scope=scope)

    @app.errorhandler(400)
    @app.errorhandler(403)
    @app.errorhandler(404)
    def _error(exc: Any) -> ResponseReturnValue:
        return render_template("error.html", error=exc), exc.code

    return app
