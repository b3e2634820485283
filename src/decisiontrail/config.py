"""configure(): one call that sets up the tracer provider, sampler, processor and exporter.

Resolution of each setting: argument > environment variable > default.

- Destination: ``endpoint`` > ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` > ``OTEL_EXPORTER_OTLP_ENDPOINT``
  selects OTLP; without any, the embedded default writes OTLP-JSON lines to ``path`` >
  ``DECISIONTRAIL_PATH`` > ``./decisiontrail-data``.
- ``protocol``: ``grpc`` or ``http/protobuf`` > ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` >
  ``OTEL_EXPORTER_OTLP_PROTOCOL`` > ``grpc``. Headers, TLS, timeouts and compression come from the
  standard ``OTEL_EXPORTER_OTLP_*`` variables, read by the OTLP exporters themselves.
- Sampler: ``sampler`` > ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG`` > parent-based always-on,
  always wrapped in AuditSampler. Resource: ``service_name`` > ``OTEL_SERVICE_NAME`` /
  ``OTEL_RESOURCE_ATTRIBUTES``.
- Recording: ``fail_closed`` > ``DECISIONTRAIL_FAIL_CLOSED``; redaction as in redaction.py;
  ``max_chars`` > ``DECISIONTRAIL_MAX_CHARS``.

A bad environment value warns and falls back to the default; a bad argument raises
ConfigurationError. With ``tracer_provider`` (the application's own SDK provider) the processor and
exporter are added to it and its sampler is wrapped, instead of creating a provider.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, ALWAYS_ON, Sampler

from .chain import ChainStage, HashChain
from .encoding import DEFAULT_MAX_CHARS
from .errors import ConfigurationError
from .exporters.file import FileSpanExporter
from .models import default_version
from .processing import DecisionSpanProcessor
from .recorder import Recorder, RecorderSettings, set_recorder
from .redaction import RedactionPolicy
from .sampling import AuditSampler

__all__ = ["configure", "Configuration", "DEFAULT_PATH"]

_log = logging.getLogger(__name__)
DEFAULT_PATH = "decisiontrail-data"
_PROTOCOLS = ("grpc", "http/protobuf")


@dataclass
class Configuration:
    """What configure() set up; ``shutdown()`` flushes and closes it."""

    tracer_provider: TracerProvider
    processor: DecisionSpanProcessor
    exporter: SpanExporter
    recorder: Recorder
    destination: str  # the directory written to, or the OTLP endpoint

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.processor.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.processor.shutdown()


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    _log.warning("decisiontrail: %s=%r is not a boolean; using %s", name, raw, default)
    return default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
        if value > 0:
            return value
    except ValueError:
        pass
    _log.warning("decisiontrail: %s=%r is not a positive integer; using %d", name, raw, default)
    return default


def _env_sampler() -> Sampler:
    try:  # the SDK's own reading of OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG
        from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

        return _get_from_env_or_default()
    except Exception:  # a private helper: fall back to the spec's default
        return ParentBased(ALWAYS_ON)


def _otlp_exporter(endpoint: str, protocol: str, headers: dict[str, str] | None) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        insecure = endpoint.startswith("http://") or None
        return Grpc(endpoint=endpoint, insecure=insecure, headers=headers)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    if not endpoint.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return Http(endpoint=endpoint, headers=headers)


def configure(
    *,
    path: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: dict[str, str] | None = None,
    service_name: str | None = None,
    sampler: Sampler | None = None,
    exporter: SpanExporter | None = None,
    tracer_provider: TracerProvider | None = None,
    set_global: bool = True,
    fail_closed: bool | None = None,
    redact_keys: Iterable[str] | None = None,
    hash_keys: Iterable[str] | None = None,
    hash_secret: str | bytes | None = None,
    max_chars: int | None = None,
    chain: bool = True,
    model_version: str | None = None,
    processor_options: dict[str, Any] | None = None,
) -> Configuration:
    """Set up decision recording; see the module docstring for how each setting is resolved."""
    if protocol is not None and protocol not in _PROTOCOLS:
        raise ConfigurationError(f"protocol must be one of {_PROTOCOLS}, not {protocol!r}")
    if max_chars is not None and (not isinstance(max_chars, int) or max_chars < 64):
        raise ConfigurationError(f"max_chars must be an int >= 64, not {max_chars!r}")
    if exporter is not None and (endpoint is not None or path is not None):
        raise ConfigurationError("give an exporter, or an endpoint, or a path: not several")

    if exporter is None:
        endpoint = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") \
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if endpoint and path is None:
            proto = protocol or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") \
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
            if proto not in _PROTOCOLS:
                _log.warning("decisiontrail: OTLP protocol %r not supported; using grpc", proto)
                proto = "grpc"
            exporter = _otlp_exporter(endpoint, proto, headers)
            destination = endpoint
        else:
            directory = Path(path or os.environ.get("DECISIONTRAIL_PATH") or DEFAULT_PATH)
            exporter = FileSpanExporter(directory)
            destination = str(directory)
    else:
        destination = type(exporter).__name__

    processor = DecisionSpanProcessor(exporter, prepare=ChainStage(HashChain() if chain else None),
                                      **(processor_options or {}))
    if tracer_provider is None:
        resource = Resource.create({SERVICE_NAME: service_name} if service_name else {})
        tracer_provider = TracerProvider(resource=resource, sampler=AuditSampler(sampler or _env_sampler()))
        if set_global:
            if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
                trace.set_tracer_provider(tracer_provider)
            else:
                _log.info("decisiontrail: a global TracerProvider is already set; decisions use their own")
    else:
        current = getattr(tracer_provider, "sampler", None)
        if current is not None and not isinstance(current, AuditSampler) and hasattr(tracer_provider, "_sampler"):
            # The SDK has no public setter; without this the application's sampler could drop decisions.
            tracer_provider._sampler = AuditSampler(current)
    tracer_provider.add_span_processor(processor)

    settings = RecorderSettings(
        max_chars=max_chars or _env_int("DECISIONTRAIL_MAX_CHARS", DEFAULT_MAX_CHARS),
        fail_closed=fail_closed if fail_closed is not None else _env_bool("DECISIONTRAIL_FAIL_CLOSED", False),
        redaction=RedactionPolicy.create(redact_keys, hash_keys, hash_secret),
        model_version=model_version or default_version(),
    )
    recorder = Recorder(settings, tracer_provider=tracer_provider)
    set_recorder(recorder)
    return Configuration(tracer_provider, processor, exporter, recorder, destination)
