"""The fast OTLP exporters' common part: requests capped in bytes, split when refused for their size,
answers sorted into delivered / retry / rejected (delivery.py), transient errors retried briefly.

``OTLPExporter`` encodes spans with an encoder (otlp_proto.ProtoEncoder, or otlpjson's encoder for
OTLP/HTTP JSON) and hands each request to a transport (otlp_grpc.py, otlp_http.py) that answers
with one of the :class:`Answer` kinds:

- ``OK``: accepted; an OTLP ``partial_success`` with rejected spans makes the request's spans
  *rejected* (the OTLP spec forbids retrying them; the server does not say which ones);
- ``TRANSIENT``: unreachable, timeout, 408/429/5xx, gRPC UNAVAILABLE…: retried here with backoff for
  up to ``retry_millis``, then *retry* (the processor spools and replays them);
- ``FAILED``: an unexpected answer (a redirect, a body that is not OTLP): *retry* at once, logged;
- ``TOO_LARGE``: HTTP 413, gRPC RESOURCE_EXHAUSTED for the message size: the request is split in
  halves and each sent again; later requests are capped below the refused size; a single span
  refused for its size is *rejected* (it could never be sent);
- ``REJECTED``: a permanent refusal (HTTP 4xx other than 408/413/429, gRPC INVALID_ARGUMENT…):
  *rejected*, never retried.

Encoding gives the GIL up every few spans (pacing.py), so that request threads are not held up for
long by the export thread.

While a request is on its way (a transport that can ``start`` one without waiting: gRPC, HTTP), the
exporter calls ``idle`` once, if set: the processor uses that time, which the receiver spends on the
request, to take the next batch from its queue, link it into the chain and :meth:`OTLPExporter.prestage`
it (encode its spans ahead). The next ``deliver`` sends those bytes. A batch still counts as
delivered only once its own request was answered (processing/exporting.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ..pacing import chunks
from .delivery import Delivery

__all__ = ["Answer", "Transport", "Encoder", "OTLPExporter", "DEFAULT_MAX_REQUEST_BYTES",
           "DEFAULT_RETRY_MILLIS", "OK", "TRANSIENT", "FAILED", "TOO_LARGE", "REJECTED"]

_log = logging.getLogger(__name__)

# Under the collector's gRPC limit (4 MiB) and its HTTP limit (20 MiB), and under the 1 MiB request
# body limit common gateways (nginx's client_max_body_size) apply by default.
DEFAULT_MAX_REQUEST_BYTES = 1_000_000
DEFAULT_RETRY_MILLIS = 1000
_MIN_LEARNED_CAP = 16 * 1024

OK, TRANSIENT, FAILED, TOO_LARGE, REJECTED = "ok", "transient", "failed", "too large", "rejected"


@dataclass(frozen=True)
class Answer:
    kind: str            # one of OK, TRANSIENT, FAILED, TOO_LARGE, REJECTED
    detail: str = ""     # what the receiver said (status, message), for logs and dead letters
    body: bytes = b""    # the response body of an OK answer (an ExportTraceServiceResponse)


class Transport(Protocol):
    """``send`` a request and wait for its answer. A transport may also have ``start(body,
    timeout)``, which sends without waiting and returns a function that waits for the answer."""

    def send(self, body: bytes, timeout: float) -> Answer: ...
    def partial_success(self, body: bytes) -> tuple[int, str]: ...
    def close(self) -> None: ...


class Encoder(Protocol):
    def span(self, s: ReadableSpan) -> bytes: ...
    def group(self, spans: Sequence[ReadableSpan], encoded: Sequence[bytes]) -> bytes: ...
    def overhead(self, s: ReadableSpan) -> int: ...


class OTLPExporter(SpanExporter):
    """A span exporter that implements ``deliver`` (delivery.py) over an encoder and a transport."""

    def __init__(self, transport: Transport, encoder: Encoder, *, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 timeout: float = 10.0, retry_millis: float = DEFAULT_RETRY_MILLIS) -> None:
        if max_request_bytes < 1024:
            raise ValueError(f"max_request_bytes must be >= 1024, not {max_request_bytes!r}")
        self.transport = transport
        self.encoder = encoder
        self.max_request_bytes = max_request_bytes
        self.timeout = timeout
        self.retry = retry_millis / 1000
        self._cap = max_request_bytes  # lowered when a receiver refuses a smaller request for its size
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self.requests_sent = 0
        self.requests_split = 0
        self.idle: Callable[[], None] | None = None  # called once while a request is on its way
        # encoded ahead (prestage): the spans (kept: their ids cannot be reused meanwhile), their
        # bytes, and each span's position by id (ints only: nothing for the garbage collector to follow)
        self._prestaged: tuple[list[ReadableSpan], list[bytes], dict[int, int]] = ([], [], {})

    # -- encoding ------------------------------------------------------------------------------
    def _encode(self, spans: Sequence[ReadableSpan]) -> list[bytes]:
        span = self.encoder.span
        (ready, ready_bytes, where), self._prestaged = self._prestaged, ([], [], {})
        out: list[bytes] = []
        for part in chunks(spans):  # waiting threads get the GIL between chunks (pacing.py)
            for s in part:
                j = where.get(id(s))
                out.append(ready_bytes[j] if j is not None and ready[j] is s else span(s))
        return out

    def prestage(self, spans: Sequence[ReadableSpan]) -> None:
        """Encode ``spans`` now, for the next ``deliver`` (called from ``idle``, with the caller
        holding whatever serialises this exporter's deliveries)."""
        span = self.encoder.span
        ready = list(spans)
        encoded: list[bytes] = []
        for part in chunks(ready):
            encoded.extend([span(s) for s in part])
        self._prestaged = (ready, encoded, {id(s): j for j, s in enumerate(ready)})

    def _requests(self, spans: Sequence[ReadableSpan], encoded: Sequence[bytes]
                  ) -> Iterator[tuple[list[ReadableSpan], list[bytes]]]:
        """Consecutive groups of spans whose request stays under the cap (a span over it alone)."""
        cap, overhead = self._cap, self.encoder.overhead
        start, size, where = 0, 0, None
        for i, b in enumerate(encoded):
            s = spans[i]
            cost = len(b) + 6
            here = (id(s._resource), id(s._instrumentation_scope))  # the fields, not their properties
            if here != where or i == start:
                where = here
                cost += overhead(s)
            if i > start and size + cost > cap:
                yield list(spans[start:i]), list(encoded[start:i])
                start, size = i, len(b) + 6 + overhead(s)
                continue
            size += cost
        if start < len(encoded):
            yield list(spans[start:]), list(encoded[start:])

    # -- delivering ----------------------------------------------------------------------------
    def deliver(self, spans: Sequence[ReadableSpan]) -> Delivery:
        result = Delivery()
        if not spans:
            return result
        if self._closed.is_set():
            result.retry.extend(spans)
            return result
        with self._lock:
            encoded = self._encode(spans)
            pending = list(self._requests(spans, encoded))
            while pending:
                group, enc = pending.pop(0)
                if not self._send(group, enc, result):  # the receiver is not answering: keep the rest
                    for g, _ in pending:
                        result.retry.extend(g)
                    break
        return result

    def _send(self, group: list[ReadableSpan], enc: list[bytes], result: Delivery) -> bool:
        """Send one request (splitting it when refused for its size); False when it must be retried later."""
        body = self.encoder.group(group, enc)
        answer = self._attempt(body)
        if answer.kind == OK:
            rejected, message = self.transport.partial_success(answer.body) if answer.body else (0, "")
            if rejected > 0:
                why = (f"the receiver rejected {rejected} of {len(group)} spans (OTLP partial_success): "
                       f"{message or 'no message'}")
                _log.warning("decisiontrail: %s", why)
                result.rejected.extend((s, why) for s in group)
            else:
                if message:
                    _log.warning("decisiontrail: the receiver accepted a request with a warning: %s", message)
                result.delivered.extend(group)
            return True
        if answer.kind == TOO_LARGE:
            if len(group) == 1:
                why = f"a request of {len(body)} bytes with this span alone was refused for its size: {answer.detail}"
                _log.warning("decisiontrail: %s", why)
                result.rejected.append((group[0], why))
                return True
            self._lower_cap(len(body), answer.detail)
            self.requests_split += 1
            half = len(group) // 2
            return self._send(group[:half], enc[:half], result) and self._send(group[half:], enc[half:], result)
        if answer.kind == REJECTED:
            why = f"the receiver rejected the request for good: {answer.detail}"
            _log.warning("decisiontrail: %s (%d spans)", why, len(group))
            result.rejected.extend((s, why) for s in group)
            return True
        if answer.kind == FAILED:
            _log.warning("decisiontrail: export failed: %s", answer.detail)
        result.retry.extend(group)
        return False

    def _lower_cap(self, refused: int, detail: str) -> None:
        cap = max(_MIN_LEARNED_CAP, refused // 2)
        if cap < self._cap:
            self._cap = cap
            _log.warning("decisiontrail: the receiver refused a request of %d bytes for its size (%s); "
                         "sending requests of at most %d bytes from now on", refused, detail, cap)

    def _attempt(self, body: bytes) -> Answer:
        """One request, with retries of transient errors for up to ``retry_millis``."""
        deadline = time.monotonic() + self.retry
        delay = 0.05
        idle = self.idle
        start: Callable[[bytes, float], Callable[[], Answer]] | None = \
            getattr(self.transport, "start", None) if idle is not None else None
        while True:
            self.requests_sent += 1
            answer: Answer
            try:
                if start is not None and idle is not None:  # the first try: idle work overlaps the receiver's
                    wait = start(body, self.timeout)
                    start = None
                    try:
                        idle()
                    except Exception as exc:  # the processor's work must not fail the request
                        _log.warning("decisiontrail: work while a request was on its way failed: %r", exc)
                    finally:  # always: the transport's connection is the request's until then
                        answer = wait()
                else:
                    answer = self.transport.send(body, self.timeout)
            except Exception as exc:  # a transport bug must not kill the export thread
                answer = Answer(FAILED, f"the transport raised {exc!r}")
            if answer.kind != TRANSIENT:
                return answer
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed.is_set():
                return answer
            if self._closed.wait(min(delay, remaining)):
                return answer
            delay *= 2

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """The SDK's interface: SUCCESS only when every span was delivered."""
        return SpanExportResult.SUCCESS if self.deliver(spans).ok else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        """Stop retrying (a hung export gives up) and close the connection."""
        self._closed.set()
        self.transport.close()  # also ends a request in flight

    def describe(self) -> dict[str, Any]:
        return {"max_request_bytes": self.max_request_bytes, "current_cap": self._cap,
                "requests_sent": self.requests_sent, "requests_split": self.requests_split}
