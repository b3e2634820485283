"""``decisiontrail serve``: a local web page to search decisions, read one with its request trace,
and review it.

Usage::

    pip install 'decisiontrail[web]'
    decisiontrail serve --data decisiontrail-data            # http://127.0.0.1:8765
    DECISIONTRAIL_SERVE_TOKEN=s3cret decisiontrail serve --data decisiontrail-data   # reviews on

Pages are rendered on the server (Flask, Jinja templates), run no JavaScript and load nothing
from the network. Everything a decision holds is treated as hostile: templates escape it and the
Content-Security-Policy forbids scripts outright. Reads are open to whoever reaches the port (it
binds 127.0.0.1 unless told otherwise); the review form exists only when a token is set, needs a
reviewer name and the token, and carries a CSRF token. A review is a ``record_review`` call, so it is
chained and signed like every other record; the original decision is never changed.
"""

from __future__ import annotations

from .app import REVIEW_ACTIONS, create_app

__all__ = ["create_app", "REVIEW_ACTIONS"]
