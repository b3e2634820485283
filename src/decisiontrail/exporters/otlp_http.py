"""OTLP over HTTP: ``http/protobuf`` (requests encoded by otlp_proto) or ``http/json`` (otlpjson),
POSTed on one kept-alive ``http.client`` connection. ``start`` sends a request and leaves reading
its answer for later, so the exporter's work-ahead (otlp.py) runs while the receiver works. Redirects are not followed: an OTLP endpoint
that redirects is misconfigured, and the answer counts as a failure (the spans are retried later)."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import ssl
import threading
from collections.abc import Callable
from urllib.parse import urlparse

from .otlp import FAILED, OK, REJECTED, TOO_LARGE, TRANSIENT, Answer, OTLPExporter, DEFAULT_MAX_REQUEST_BYTES
from .otlp import DEFAULT_RETRY_MILLIS, Encoder
from .otlp_proto import ProtoEncoder, parse_partial_success
from .otlpjson import JsonEncoder

__all__ = ["HttpTransport", "FastOTLPHttpExporter", "PROTOBUF", "JSON"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class HttpTransport:
    def __init__(self, url: str, *, content_type: str = PROTOBUF, headers: dict[str, str] | None = None,
                 compression: str | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        u = urlparse(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self.scheme, self.host, self.port = u.scheme, u.hostname, u.port
        self.path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self.content_type = content_type
        self.gzip = (compression or "").lower() == "gzip"
        self.headers = {"Content-Type": content_type, "User-Agent": "decisiontrail",
                        **({"Content-Encoding": "gzip"} if self.gzip else {}), **(headers or {})}
        self.ssl_context = ssl_context
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._pid = 0

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._conn is None or self._pid != os.getpid():  # a forked child opens its own
            if self.scheme == "https":
                self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                                         context=self.ssl_context or ssl.create_default_context())
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            self._pid = os.getpid()
        self._conn.timeout = timeout
        return self._conn

    def send(self, body: bytes, timeout: float) -> Answer:
        return self.start(body, timeout)()

    def start(self, body: bytes, timeout: float) -> Callable[[], Answer]:
        """POST ``body`` and return a function that waits for the answer (otlp.Transport): the
        receiver works on the request while the caller does something else. The connection is
        this request's until that function is called (it must be, once)."""
        data = gzip.compress(body, 1) if self.gzip else body
        self._lock.acquire()
        try:
            conn = self._connection(timeout)
            conn.request("POST", self.path, data, self.headers)
        except (OSError, http.client.HTTPException) as exc:
            self._close_locked()
            self._lock.release()
            failed = Answer(TRANSIENT, f"{self.url}: {exc!r}")
            return lambda: failed
        except BaseException:
            self._lock.release()
            raise

        def answer() -> Answer:
            try:
                resp = conn.getresponse()
                payload = resp.read()
                if resp.will_close:
                    self._close_locked()
            except (OSError, http.client.HTTPException) as exc:
                self._close_locked()
                return Answer(TRANSIENT, f"{self.url}: {exc!r}")
            finally:
                self._lock.release()
            return self._answer(resp, payload)
        return answer

    def _answer(self, resp: http.client.HTTPResponse, payload: bytes) -> Answer:
        status = resp.status
        detail = f"HTTP {status} {resp.reason}"
        if 200 <= status < 300:
            return Answer(OK, detail, payload if resp.getheader("Content-Type", "").startswith(
                (self.content_type, PROTOBUF, JSON)) else b"")
        text = payload[:300].decode("utf-8", "replace").strip()
        if text:
            detail += f": {text}"
        if 300 <= status < 400:
            return Answer(FAILED, f"{detail} (redirect to {resp.getheader('Location')!r}, not followed)")
        if status == 413:
            return Answer(TOO_LARGE, detail)
        if status in (408, 429) or status >= 500:
            return Answer(TRANSIENT, detail)
        if 400 <= status < 500:
            return Answer(REJECTED, detail)
        return Answer(FAILED, f"unexpected answer {detail}")

    def partial_success(self, body: bytes) -> tuple[int, str]:
        stripped = body.lstrip()
        if stripped.startswith(b"{"):
            try:
                msg = json.loads(stripped)
            except ValueError:
                return 0, ""
            ps = msg.get("partialSuccess") or msg.get("partial_success") or {}
            rejected = ps.get("rejectedSpans", ps.get("rejected_spans", 0))
            return int(rejected or 0), str(ps.get("errorMessage", ps.get("error_message", "")) or "")
        try:
            return parse_partial_success(body)
        except ValueError:
            return 0, ""

    def _close_locked(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:  # pragma: no cover
                pass
            self._conn = None

    def close(self) -> None:
        conn = self._conn
        if conn is not None:
            try:
                conn.close()  # without the lock: ends a request in flight
            except OSError:  # pragma: no cover
                pass


class FastOTLPHttpExporter(OTLPExporter):
    """OTLP/HTTP span exporter, protobuf (default) or JSON, encoded directly from the spans."""

    def __init__(self, endpoint: str = "http://127.0.0.1:4318/v1/traces", *, json_encoding: bool = False,
                 headers: dict[str, str] | None = None, timeout: float = 10.0, compression: str | None = None,
                 ssl_context: ssl.SSLContext | None = None, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 retry_millis: float = DEFAULT_RETRY_MILLIS) -> None:
        encoder: Encoder = JsonEncoder(wire_flags=True) if json_encoding else ProtoEncoder()
        super().__init__(HttpTransport(endpoint, content_type=JSON if json_encoding else PROTOBUF, headers=headers,
                                       compression=compression, ssl_context=ssl_context),
                         encoder, max_request_bytes=max_request_bytes, timeout=timeout, retry_millis=retry_millis)
        self.endpoint = endpoint
