"""``decisiontrail serve``: a local web page to search, read and review decisions."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["register", "run", "TOKEN_ENV"]

TOKEN_ENV = "DECISIONTRAIL_SERVE_TOKEN"

_EPILOG = f"""\
Reads are open to whoever can reach the port (127.0.0.1 unless --host says otherwise). Reviews
(confirm, override, escalate, annotate) need a reviewer name and the token from --token or
{TOKEN_ENV}; without a token the page is read-only. A review is recorded with record_review:
into the embedded store of the first --data directory, or over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT
is set, signed when DECISIONTRAIL_SIGNING_KEY is.

example:
  {TOKEN_ENV}=s3cret decisiontrail serve --data decisiontrail-data --port 8765
"""


def register(sub: Any) -> None:
    s = sub.add_parser("serve", help="a local web page to search, read and review decisions",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--data", required=True, action="append", help="audit directory; repeatable (one store)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    s.add_argument("--jaeger", help="Jaeger query URL for request traces, e.g. http://127.0.0.1:16686")
    s.add_argument("--warehouse", metavar="PATH", help="compacted warehouse (default DATA/warehouse, when built)")
    s.add_argument("--token", help=f"review token (default: ${TOKEN_ENV}); without one, no reviews")
    s.add_argument("--public-key", action="append", default=[], metavar="PATH",
                   help="a key that may have signed the checkpoints, for the integrity verdicts; repeatable")
    s.add_argument("--anchors", metavar="DIR", help="the anchor store, for the integrity verdicts")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from werkzeug.serving import make_server

        from ..web import create_app
    except ImportError as exc:
        print(f"decisiontrail serve needs the web extra: pip install 'decisiontrail[web]' ({exc})", file=sys.stderr)
        return 2
    token = args.token or os.environ.get(TOKEN_ENV) or None
    recorder = after = None
    if token:
        import decisiontrail

        config = decisiontrail.configure(path=args.data[0], service_name="decisiontrail-serve")
        recorder = getattr(decisiontrail, "record_review", None)
        after = config.drain
    from ..anchors import AnchorStore
    from ..signing import load_verifier
    from ..web.integrity import IntegrityIndex
    from ..web.source import DecisionSource

    source = DecisionSource(args.data, jaeger=args.jaeger, warehouse=args.warehouse)
    verifiers = {v.key_id: v for v in map(load_verifier, args.public_key)} if args.public_key else None
    anchors = [(str(p), t) for p, t in AnchorStore(args.anchors).notes()] if args.anchors else None
    app = create_app(args.data, token=token, recorder=recorder, after_review=after, source=source,
                     integrity=IntegrityIndex(source.open, verifiers, anchors))
    server = make_server(args.host, args.port, app, threaded=True)
    print(f"decisiontrail serve: http://{args.host}:{server.server_port}/ "
          f"({'reviews on' if recorder else 'read-only'})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
