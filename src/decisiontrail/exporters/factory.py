"""Building the fast OTLP exporters from arguments and the SDK's ``OTEL_EXPORTER_OTLP_*`` variables.

``otlp_exporter(protocol, endpoint, headers)`` resolves each setting as the SDK's exporters do:
argument, then ``OTEL_EXPORTER_OTLP_TRACES_<X>``, then ``OTEL_EXPORTER_OTLP_<X>``, then the default
(endpoint, headers, timeout, compression, insecure, certificate, client key and certificate), plus
``DECISIONTRAIL_MAX_REQUEST_BYTES`` and ``DECISIONTRAIL_EXPORT_RETRY_MS``.
``DECISIONTRAIL_EXPORTER=sdk`` keeps the SDK's own OTLP exporters instead (see :func:`use_fast`).
"""

from __future__ import annotations

import logging
import os
import ssl
from typing import Any

from opentelemetry.sdk.trace.export import SpanExporter

from .._env import env_int
from .otlp import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_RETRY_MILLIS

__all__ = ["otlp_exporter", "fast_equivalent", "use_fast", "PROTOCOLS"]

_log = logging.getLogger(__name__)
PROTOCOLS = ("grpc", "http/protobuf", "http/json")


def _env(name: str) -> str | None:
    return os.environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or os.environ.get(f"OTEL_EXPORTER_OTLP_{name}")


def use_fast() -> bool:
    """False when ``DECISIONTRAIL_EXPORTER=sdk`` asks for the SDK's OTLP exporters."""
    return os.environ.get("DECISIONTRAIL_EXPORTER", "").strip().lower() != "sdk"


def _headers(headers: dict[str, str] | None) -> dict[str, str]:
    if headers is not None:
        return dict(headers)
    raw = _env("HEADERS")
    if not raw:
        return {}
    from opentelemetry.util.re import parse_env_headers

    return dict(parse_env_headers(raw, liberal=True))


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def _http_endpoint(endpoint: str | None) -> str:
    if endpoint:
        return endpoint if endpoint.rstrip("/").endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"
    specific = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if specific:
        return specific  # the signal-specific variable is used as is (the OTLP spec)
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318"
    return base.rstrip("/") + "/v1/traces"


def otlp_exporter(protocol: str = "grpc", endpoint: str | None = None, headers: dict[str, str] | None = None,
                  *, max_request_bytes: int | None = None, timeout: float | None = None) -> SpanExporter:
    """The fast OTLP exporter for ``protocol`` (``grpc``, ``http/protobuf`` or ``http/json``)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    cap = max_request_bytes or env_int("DECISIONTRAIL_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES)
    if cap < 1024:
        _log.warning("decisiontrail: DECISIONTRAIL_MAX_REQUEST_BYTES=%d is below 1024; using %d", cap,
                     DEFAULT_MAX_REQUEST_BYTES)
        cap = DEFAULT_MAX_REQUEST_BYTES
    retry = env_int("DECISIONTRAIL_EXPORT_RETRY_MS", DEFAULT_RETRY_MILLIS)
    if timeout is None:
        try:
            timeout = float(_env("TIMEOUT") or 10)
        except ValueError:
            timeout = 10.0
        if timeout > 1000:  # the SDK's variable is in seconds; some set milliseconds
            timeout /= 1000
    compression = (_env("COMPRESSION") or "").lower() or None
    ca, key, cert = _env("CERTIFICATE"), _env("CLIENT_KEY"), _env("CLIENT_CERTIFICATE")
    common: dict[str, Any] = {"headers": _headers(headers), "timeout": timeout, "compression": compression,
                              "max_request_bytes": cap, "retry_millis": retry}
    if protocol == "grpc":
        import grpc

        from .otlp_grpc import FastOTLPGrpcExporter

        where = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") \
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4317"
        flag = _env("INSECURE")
        insecure = None if flag is None else flag.strip().lower() == "true"
        if where.startswith("https://"):
            insecure = False
        credentials = None
        if ca or key or cert:
            credentials = grpc.ssl_channel_credentials(_read(ca), _read(key), _read(cert))
        return FastOTLPGrpcExporter(where, insecure=insecure, credentials=credentials, **common)
    from .otlp_http import FastOTLPHttpExporter

    context = None
    if ca or cert:
        context = ssl.create_default_context(cafile=ca or None)
        if cert:
            context.load_cert_chain(cert, key or None)
    return FastOTLPHttpExporter(_http_endpoint(endpoint), json_encoding=protocol == "http/json",
                                ssl_context=context, **common)


def fast_equivalent(exporter: SpanExporter) -> SpanExporter | None:
    """For an SDK OTLP span exporter built from the environment (as ``opentelemetry-instrument``
    builds it), the fast exporter for the same settings; None for any other exporter."""
    if not use_fast():
        return None
    module = type(exporter).__module__
    if type(exporter).__name__ != "OTLPSpanExporter" or not module.startswith("opentelemetry.exporter.otlp.proto."):
        return None
    protocol = "grpc" if ".grpc." in module else "http/protobuf"
    return otlp_exporter(protocol)
