"""OTLP over gRPC with requests encoded by otlp_proto: raw bytes through grpc's generic unary call
(``channel.unary_unary`` without serializers), on the standard ``TraceService/Export`` method."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import grpc

from .otlp import FAILED, OK, REJECTED, TOO_LARGE, TRANSIENT, Answer, OTLPExporter, DEFAULT_MAX_REQUEST_BYTES
from .otlp import DEFAULT_RETRY_MILLIS
from .otlp_proto import ProtoEncoder, parse_partial_success

__all__ = ["GrpcTransport", "FastOTLPGrpcExporter", "EXPORT_METHOD"]

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

_C = grpc.StatusCode
# The OTLP spec's retryable codes (RESOURCE_EXHAUSTED is told apart below); UNAUTHENTICATED and
# PERMISSION_DENIED are retried too: a credential being rotated must not dead-letter decisions.
_TRANSIENT = {_C.CANCELLED, _C.DEADLINE_EXCEEDED, _C.ABORTED, _C.OUT_OF_RANGE, _C.UNAVAILABLE,
              _C.DATA_LOSS, _C.UNAUTHENTICATED, _C.PERMISSION_DENIED, _C.UNKNOWN, _C.INTERNAL}
_SIZE_WORDS = ("larger than max", "message too large", "too large", "exceeds", "max message size")


def _target(endpoint: str, insecure: bool | None) -> tuple[str, bool]:
    """(host:port, insecure) from an OTLP gRPC endpoint (``http://h:p``, ``https://h:p`` or ``h:p``)."""
    if "://" in endpoint:
        u = urlparse(endpoint)
        return u.netloc or u.path, (u.scheme == "http") if insecure is None else insecure
    return endpoint, True if insecure is None else insecure


def _failure(exc: grpc.RpcError) -> Answer:
    code = exc.code() if hasattr(exc, "code") else _C.UNKNOWN
    detail = f"gRPC {getattr(code, 'name', code)}: {exc.details() if hasattr(exc, 'details') else exc}"
    if code == _C.RESOURCE_EXHAUSTED:
        text = detail.lower()
        return Answer(TOO_LARGE if any(w in text for w in _SIZE_WORDS) else TRANSIENT, detail)
    if code in _TRANSIENT:
        return Answer(TRANSIENT, detail)
    return Answer(REJECTED, detail)


def _success(response: Any) -> Answer:
    if not isinstance(response, bytes):
        return Answer(FAILED, f"unexpected gRPC response {type(response).__name__}")
    return Answer(OK, body=response)


class GrpcTransport:
    def __init__(self, endpoint: str, *, insecure: bool | None = None, headers: dict[str, str] | None = None,
                 compression: str | None = None, credentials: grpc.ChannelCredentials | None = None,
                 options: list[tuple[str, Any]] | None = None) -> None:
        self.target, self.insecure = _target(endpoint, insecure)
        self.metadata = tuple((k.lower(), v) for k, v in (headers or {}).items()) or None
        self.compression = grpc.Compression.Gzip if (compression or "").lower() == "gzip" else None
        self.credentials = credentials
        # The receiver decides what is too big: never refuse to send a big request here.
        self.options = [("grpc.max_send_message_length", -1), *(options or [])]
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._call: Any = None
        self._pid = 0

    def _stub(self) -> Any:
        with self._lock:
            if self._channel is None or self._pid != os.getpid():
                # A forked child never uses its parent's channel: it makes its own.
                if self.insecure:
                    self._channel = grpc.insecure_channel(self.target, self.options, self.compression)
                else:
                    creds = self.credentials or grpc.ssl_channel_credentials()
                    self._channel = grpc.secure_channel(self.target, creds, self.options, self.compression)
                self._call = self._channel.unary_unary(EXPORT_METHOD)
                self._pid = os.getpid()
            return self._call

    def send(self, body: bytes, timeout: float) -> Answer:
        try:
            response = self._stub()(body, timeout=timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            return _failure(exc)
        return _success(response)

    def start(self, body: bytes, timeout: float) -> Callable[[], Answer]:
        """Send without waiting: the returned function waits for the answer (otlp.Transport)."""
        try:
            future = self._stub().future(body, timeout=timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            failed = _failure(exc)
            return lambda: failed

        def answer() -> Answer:
            try:
                response = future.result()
            except grpc.RpcError as exc:
                return _failure(exc)
            return _success(response)
        return answer

    def partial_success(self, body: bytes) -> tuple[int, str]:
        return parse_partial_success(body)

    def close(self) -> None:
        with self._lock:
            channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()


class FastOTLPGrpcExporter(OTLPExporter):
    """OTLP/gRPC span exporter: standard requests, encoded directly from the spans (otlp_proto.py)."""

    def __init__(self, endpoint: str = "http://127.0.0.1:4317", *, insecure: bool | None = None,
                 headers: dict[str, str] | None = None, timeout: float = 10.0, compression: str | None = None,
                 credentials: grpc.ChannelCredentials | None = None,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 retry_millis: float = DEFAULT_RETRY_MILLIS) -> None:
        super().__init__(GrpcTransport(endpoint, insecure=insecure, headers=headers, compression=compression,
                                       credentials=credentials),
                         ProtoEncoder(), max_request_bytes=max_request_bytes, timeout=timeout,
                         retry_millis=retry_millis)
        self.endpoint = endpoint
