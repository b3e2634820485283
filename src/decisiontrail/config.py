"""configure(): one call that sets up the tracer provider, sampler, processor and exporter.

Resolution of each setting: argument > environment variable > default.

- Destination: ``endpoint`` > ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` > ``OTEL_EXPORTER_OTLP_ENDPOINT``
  selects OTLP; without any, the embedded default writes OTLP-JSON lines to ``path`` >
  ``DECISIONTRAIL_PATH`` > ``./decisiontrail-data``.
- ``protocol``: ``grpc``, ``http/protobuf`` or ``http/json`` > ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` >
  ``OTEL_EXPORTER_OTLP_PROTOCOL`` > ``grpc``. The exporter is decisiontrail's own (exporters/otlp.py:
  the same OTLP requests, encoded directly; ``DECISIONTRAIL_EXPORTER=sdk`` selects the SDK's).
  Headers, TLS, timeouts and compression come from the standard ``OTEL_EXPORTER_OTLP_*`` variables
  (exporters/factory.py); ``max_request_bytes`` > ``DECISIONTRAIL_MAX_REQUEST_BYTES`` > 1,000,000
  caps each export request.
- Sampler: ``sampler`` > ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG`` > parent-based always-on,
  always wrapped in AuditSampler. Resource: ``service_name`` > ``OTEL_SERVICE_NAME`` /
  ``OTEL_RESOURCE_ATTRIBUTES``.
- Recording: ``fail_closed`` > ``DECISIONTRAIL_FAIL_CLOSED``; redaction as in redaction.py;
  ``max_chars`` > ``DECISIONTRAIL_MAX_CHARS``; ``payload_store`` (a directory, an fsspec URL or a
  PayloadStore; ``False``: none) > ``DECISIONTRAIL_PAYLOAD_STORE`` > none (store/payloads.py).
- No loss (docs/no-loss.md): ``spool_dir`` > ``DECISIONTRAIL_SPOOL_DIR`` > ``<path>/spool`` for the
  embedded store, ``./decisiontrail-data/spool/<service.name>`` for OTLP (or a given ``exporter``);
  ``spool_dir=False`` runs without a spool. ``on_full`` (``spool``, ``block`` or ``drop``) > ``DECISIONTRAIL_ON_FULL`` >
  ``spool`` (``block`` without a spool); ``block_timeout_millis`` > ``DECISIONTRAIL_BLOCK_TIMEOUT_MS``
  > 1000; ``OTEL_BSP_MAX_QUEUE_SIZE``, ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` and ``OTEL_BSP_SCHEDULE_DELAY``
  set the processor's queue, batch and delay. The spool's leftovers from earlier processes are replayed from configure() on.
  ``dead_letter_dir`` > ``DECISIONTRAIL_DEAD_LETTER_DIR`` > ``<spool_dir>/dead-letter``: where what the
  receiver rejects for good is kept (deadletter.py); without a spool and without one, such decisions
  count as lost. ``durability`` (``async`` or ``sync``) > ``DECISIONTRAIL_DURABILITY`` > ``async``: with
  ``sync`` each decision is in the spool, fsynced, before the recording call returns (its own span,
  written at its end), and the replayer delivers it. ``DECISIONTRAIL_SPOOL_SEGMENT_MS`` (2000): the
  age at which the segment being written becomes replayable. After a fork, an OTLP exporter made here
  is made again in the child (a new gRPC channel).
- Trust (docs/trust.md): ``signing_key`` (a key file, its text, or a Signer) >
  ``DECISIONTRAIL_SIGNING_KEY`` > none; ``anchors`` (a directory) > ``DECISIONTRAIL_ANCHORS`` > none.
  With either, the chain gets a checkpoint every ``checkpoint_every`` > ``DECISIONTRAIL_CHECKPOINT_EVERY``
  > 1000 decisions or ``checkpoint_seconds`` > ``DECISIONTRAIL_CHECKPOINT_SECONDS`` > 60 seconds, and a
  closed one at shutdown. A bad key argument raises; a bad key in the environment is logged as an
  error and the checkpoints go unsigned.

- ``native`` > ``DECISIONTRAIL_NATIVE`` > off: the optional native accelerator of the export path
  (native.py; ``native=True`` without it installed raises, the environment variable only warns).
- ``gc_freeze`` > ``DECISIONTRAIL_GC_FREEZE`` > off: at the end of configure(), ``gc.collect()`` then
  ``gc.freeze()``, so that later collections no longer walk what is loaded by then
  (docs/operations.md says when that is safe).

A bad environment value warns and falls back to the default; a bad argument raises
ConfigurationError. With ``tracer_provider`` (the application's own SDK provider) the processor and
exporter are added to it and its sampler is wrapped, instead of creating a provider.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, ALWAYS_ON, Sampler

from .anchors import AnchoringExporter, AnchorStore
from .chain import ChainStage, HashChain
from .checkpoints import DEFAULT_EVERY, DEFAULT_SECONDS, Checkpointer
from .encoding import DEFAULT_MAX_CHARS
from .encoding.bounded import MIN_MAX_CHARS
from ._env import env_bool as _env_bool
from ._env import env_choice as _env_choice
from ._env import env_int as _env_int
from .errors import ConfigurationError
from .exporters.factory import PROTOCOLS, otlp_exporter, use_fast
from .exporters.file import FileSpanExporter
from .models import default_version
from .native import use_native
from .pacing import Chunked
from .processing import DURABILITY_MODES, ON_FULL_POLICIES, DecisionSpanProcessor
from .recorder import Recorder, RecorderSettings, set_recorder
from .redaction import RedactionPolicy
from .sampling import AuditSampler
from .signing import Signer, load_signer
from .spool import Spool
from .store.payloads import PayloadStore, payload_store_from_env

__all__ = ["configure", "build_processor", "Configuration", "DEFAULT_PATH"]

_log = logging.getLogger(__name__)
DEFAULT_PATH = "decisiontrail-data"
_PROTOCOLS = PROTOCOLS


@dataclass
class Configuration:
    """What configure() set up; ``shutdown()`` flushes and closes it."""

    tracer_provider: TracerProvider
    processor: DecisionSpanProcessor
    exporter: SpanExporter
    recorder: Recorder
    destination: str  # the directory written to, or the OTLP endpoint
    spool: Spool | None = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until every decision so far is exported or safely in the spool."""
        return self.processor.force_flush(timeout_millis)

    def drain(self, timeout_millis: int = 30000) -> bool:
        """Wait until every decision so far is exported, spool included. False on timeout, and once
        anything was lost, dead-lettered or found corrupt (``health()`` says what and why)."""
        return self.processor.drain(timeout_millis)

    def health(self) -> dict[str, object]:
        """The processor's state for a health check (DecisionSpanProcessor.health)."""
        return self.processor.health()

    def shutdown(self) -> None:
        self.processor.shutdown()


def freeze_heap() -> None:
    """``gc_freeze``: collect, then move every object the garbage collector tracks (the modules, the
    model, what the application loaded) to its permanent generation, which no later collection walks."""
    gc.collect()
    gc.freeze()


def _payload_store(arg: str | os.PathLike[str] | PayloadStore | Literal[False] | None) -> PayloadStore | None:
    if arg is None:
        return payload_store_from_env()
    if arg is False:
        return None
    if isinstance(arg, PayloadStore):
        return arg
    if not isinstance(arg, (str, os.PathLike)):
        raise ConfigurationError(f"payload_store must be a directory, a URL or a PayloadStore, not {arg!r}")
    try:
        return PayloadStore(arg)
    except Exception as exc:
        raise ConfigurationError(f"payload_store {arg!r}: {exc}") from exc


def _env_sampler() -> Sampler:
    try:  # the SDK's own reading of OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG
        from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

        return _get_from_env_or_default()
    except Exception:  # a private helper: fall back to the spec's default
        return ParentBased(ALWAYS_ON)


def _default_spool(exporter: SpanExporter, resource: Resource) -> Path:
    if isinstance(exporter, FileSpanExporter):
        return exporter.directory / "spool"
    # One directory per service: a leftover is replayed by the same service, not by whichever
    # process happens to start next in this working directory.
    name = str(resource.attributes.get(SERVICE_NAME) or "unknown_service")
    return Path(DEFAULT_PATH) / "spool" / (re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip(".") or "_")


def _otlp_exporter(endpoint: str, protocol: str, headers: dict[str, str] | None,
                   max_request_bytes: int | None = None) -> SpanExporter:
    if use_fast():  # decisiontrail's OTLP exporters (exporters/otlp.py); DECISIONTRAIL_EXPORTER=sdk: the SDK's
        return otlp_exporter(protocol, endpoint, headers, max_request_bytes=max_request_bytes)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        insecure = endpoint.startswith("http://") or None
        return Grpc(endpoint=endpoint, insecure=insecure, headers=headers)
    if protocol == "http/json":
        _log.warning("decisiontrail: the SDK has no http/json exporter; using http/protobuf")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    if not endpoint.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return Http(endpoint=endpoint, headers=headers)


_BSP_VARIABLES = {
    "OTEL_BSP_MAX_QUEUE_SIZE": "max_queue_size",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "max_export_batch_size",
    "OTEL_BSP_SCHEDULE_DELAY": "schedule_delay_millis",
}


SigningKey = str | os.PathLike[str] | bytes | Signer


def _chain_stage(chain: bool, resource: Resource, signing_key: SigningKey | None, anchored: bool,
                 checkpoint_every: int | None, checkpoint_seconds: float | None) -> ChainStage:
    """The hash chain, and its checkpoints when there is a key or an anchor store to make them for."""
    if not chain:
        return ChainStage(None)
    signer: Signer | None = None
    if signing_key is not None:
        signer = load_signer(signing_key)  # a bad argument raises ConfigurationError
    elif os.environ.get("DECISIONTRAIL_SIGNING_KEY"):
        try:
            signer = load_signer(os.environ["DECISIONTRAIL_SIGNING_KEY"])
        except ConfigurationError as exc:
            _log.error("decisiontrail: DECISIONTRAIL_SIGNING_KEY: %s; checkpoints are NOT signed", exc)
    checkpointer = None
    if signer is not None or anchored:
        every = checkpoint_every or _env_int("DECISIONTRAIL_CHECKPOINT_EVERY", DEFAULT_EVERY)
        seconds = checkpoint_seconds or _env_int("DECISIONTRAIL_CHECKPOINT_SECONDS", int(DEFAULT_SECONDS))
        checkpointer = Checkpointer(signer, every, float(seconds))
    return ChainStage(HashChain(), checkpointer, resource)


def _anchored(factory: Callable[[], SpanExporter], store: AnchorStore) -> SpanExporter:
    return AnchoringExporter(factory(), store)


def build_processor(
    exporter: SpanExporter,
    resource: Resource,
    *,
    spool_dir: str | os.PathLike[str] | Literal[False] | None = None,
    on_full: str | None = None,
    block_timeout_millis: int | None = None,
    fail_closed: bool | None = None,
    chain: bool = True,
    signing_key: SigningKey | None = None,
    anchors: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    checkpoint_seconds: float | None = None,
    processor_options: dict[str, Any] | None = None,
    dead_letter_dir: str | os.PathLike[str] | None = None,
    durability: str | None = None,
    exporter_factory: Callable[[], SpanExporter] | None = None,
) -> DecisionSpanProcessor:
    """The no-loss processor for ``exporter``, with its spool, hash chain and signed checkpoints,
    settings resolved as in configure() (also used by the ``opentelemetry-instrument`` configurator,
    autoconfig.py)."""
    spool: Spool | None = None
    if spool_dir is not False:
        where = spool_dir or os.environ.get("DECISIONTRAIL_SPOOL_DIR") or _default_spool(exporter, resource)
        spool = Spool(where, max_segment_age=_env_int("DECISIONTRAIL_SPOOL_SEGMENT_MS", 2000) / 1000)
    anchors = anchors or os.environ.get("DECISIONTRAIL_ANCHORS") or None
    stage = _chain_stage(chain, resource, signing_key, anchors is not None, checkpoint_every, checkpoint_seconds)
    if anchors is not None and stage.checkpointer is not None:
        store = AnchorStore(anchors)
        exporter = AnchoringExporter(exporter, store)
        if exporter_factory is not None:  # a forked child's fresh exporter is anchored the same way
            exporter_factory = functools.partial(_anchored, exporter_factory, store)
    options: dict[str, Any] = {
        "spool": spool,
        "on_full": on_full or _env_choice("DECISIONTRAIL_ON_FULL", ON_FULL_POLICIES,
                                          "spool" if spool is not None else "block"),
        "block_timeout_millis": block_timeout_millis if block_timeout_millis is not None
        else _env_int("DECISIONTRAIL_BLOCK_TIMEOUT_MS", 1000),
        "fail_closed": fail_closed if fail_closed is not None else _env_bool("DECISIONTRAIL_FAIL_CLOSED", False),
        # in chunks: the export thread gives the GIL up between them (pacing.py)
        "prepare": Chunked(stage),
        "dead_letter_dir": dead_letter_dir or os.environ.get("DECISIONTRAIL_DEAD_LETTER_DIR") or None,
        "durability": durability or _env_choice("DECISIONTRAIL_DURABILITY", DURABILITY_MODES, "async"),
        "exporter_factory": exporter_factory,
        # The SDK's batch settings apply to this processor too (defaults: the processor's own).
        **{opt: n for var, opt in _BSP_VARIABLES.items() if (n := _env_int(var, 0))},
    } | (processor_options or {})
    if options["on_full"] == "spool" and options["spool"] is None:
        _log.warning('decisiontrail: DECISIONTRAIL_ON_FULL=spool without a spool; using "block"')
        options["on_full"] = "block"
    if options["durability"] == "sync" and options["spool"] is None:
        _log.warning('decisiontrail: DECISIONTRAIL_DURABILITY=sync without a spool; using "async"')
        options["durability"] = "async"
    processor = DecisionSpanProcessor(exporter, **options)
    stage.start(processor.on_end)  # the checkpoint timer of an idle process queues through on_end
    return processor


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
    signing_key: SigningKey | None = None,
    anchors: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    checkpoint_seconds: float | None = None,
    model_version: str | None = None,
    spool_dir: str | os.PathLike[str] | Literal[False] | None = None,
    on_full: str | None = None,
    block_timeout_millis: int | None = None,
    processor_options: dict[str, Any] | None = None,
    max_request_bytes: int | None = None,
    payload_store: str | os.PathLike[str] | PayloadStore | Literal[False] | None = None,
    dead_letter_dir: str | os.PathLike[str] | None = None,
    durability: str | None = None,
    gc_freeze: bool | None = None,
    native: bool | None = None,
) -> Configuration:
    """Set up decision recording; see the module docstring for how each setting is resolved."""
    use_native(native)  # before the exporter and the chain stage are made: they look it up once
    if on_full is not None and on_full not in ON_FULL_POLICIES:
        raise ConfigurationError(f"on_full must be one of {ON_FULL_POLICIES}, not {on_full!r}")
    if spool_dir is False and on_full == "spool":
        raise ConfigurationError('on_full="spool" needs a spool: not spool_dir=False')
    if block_timeout_millis is not None and (not isinstance(block_timeout_millis, int) or block_timeout_millis < 0):
        raise ConfigurationError(f"block_timeout_millis must be an int >= 0, not {block_timeout_millis!r}")
    if protocol is not None and protocol not in _PROTOCOLS:
        raise ConfigurationError(f"protocol must be one of {_PROTOCOLS}, not {protocol!r}")
    if max_chars is not None and (not isinstance(max_chars, int) or max_chars < MIN_MAX_CHARS):
        raise ConfigurationError(f"max_chars must be an int >= {MIN_MAX_CHARS}, not {max_chars!r}")
    if max_request_bytes is not None and (not isinstance(max_request_bytes, int) or max_request_bytes < 1024):
        raise ConfigurationError(f"max_request_bytes must be an int >= 1024, not {max_request_bytes!r}")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int) or checkpoint_every < 1):
        raise ConfigurationError(f"checkpoint_every must be an int >= 1, not {checkpoint_every!r}")
    if checkpoint_seconds is not None and (not isinstance(checkpoint_seconds, (int, float)) or checkpoint_seconds <= 0):
        raise ConfigurationError(f"checkpoint_seconds must be a number > 0, not {checkpoint_seconds!r}")
    payloads = _payload_store(payload_store)
    if durability is not None and durability not in DURABILITY_MODES:
        raise ConfigurationError(f"durability must be one of {DURABILITY_MODES}, not {durability!r}")
    if durability == "sync" and spool_dir is False:
        raise ConfigurationError('durability="sync" needs a spool: not spool_dir=False')
    if exporter is not None and (endpoint is not None or path is not None):
        raise ConfigurationError("give an exporter, or an endpoint, or a path: not several")

    factory: Callable[[], SpanExporter] | None = None
    if exporter is None:
        endpoint = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") \
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if endpoint and path is None:
            proto = protocol or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") \
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
            if proto not in _PROTOCOLS:
                _log.warning("decisiontrail: OTLP protocol %r not supported; using grpc", proto)
                proto = "grpc"
            exporter = _otlp_exporter(endpoint, proto, headers, max_request_bytes)
            # A forked child makes its own (a new gRPC channel): never the parent's, whatever its
            # threads were doing at the fork.
            factory = functools.partial(_otlp_exporter, endpoint, proto, headers, max_request_bytes)
            destination = endpoint
        else:
            directory = Path(path or os.environ.get("DECISIONTRAIL_PATH") or DEFAULT_PATH)
            exporter = FileSpanExporter(directory)
            destination = str(directory)
    else:
        destination = type(exporter).__name__

    resource = getattr(tracer_provider, "resource", None) or Resource.create(
        {SERVICE_NAME: service_name} if service_name else {})
    closed = fail_closed if fail_closed is not None else _env_bool("DECISIONTRAIL_FAIL_CLOSED", False)
    processor = build_processor(exporter, resource, spool_dir=spool_dir, on_full=on_full,
                                block_timeout_millis=block_timeout_millis, fail_closed=closed, chain=chain,
                                signing_key=signing_key, anchors=anchors, checkpoint_every=checkpoint_every,
                                checkpoint_seconds=checkpoint_seconds, processor_options=processor_options,
                                dead_letter_dir=dead_letter_dir,
                                durability=durability, exporter_factory=factory)
    if tracer_provider is None:
        tracer_provider = TracerProvider(resource=resource, sampler=AuditSampler(sampler or _env_sampler()))
        if set_global:
            if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
                trace.set_tracer_provider(tracer_provider)
            else:
                _log.info("decisiontrail: a global TracerProvider is already set; decisions use their own")
    else:
        current = getattr(tracer_provider, "sampler", None)
        if current is not None and not isinstance(current, AuditSampler):
            # Without this the application's sampler would drop decisions. The SDK keeps the sampler
            # in a plain attribute (``sampler``; ``_sampler`` in older releases) that each tracer
            # reads when get_tracer() makes it, so the recorder's tracer, made below, sees the wrapper.
            attr = "_sampler" if hasattr(tracer_provider, "_sampler") else "sampler"
            try:
                setattr(tracer_provider, attr, AuditSampler(current))
            except AttributeError:
                _log.warning("decisiontrail: cannot wrap the sampler of %r; the application's sampler "
                             "may drop decisions (counted as unrecorded)", tracer_provider)
    tracer_provider.add_span_processor(processor)

    settings = RecorderSettings(
        max_chars=max_chars or _env_int("DECISIONTRAIL_MAX_CHARS", DEFAULT_MAX_CHARS),
        fail_closed=closed,
        redaction=RedactionPolicy.create(redact_keys, hash_keys, hash_secret),
        model_version=model_version or default_version(),
        payload_store=payloads,
        own_spans=processor.durability == "sync",
    )
    recorder = Recorder(settings, tracer_provider=tracer_provider)
    set_recorder(recorder)
    if gc_freeze if gc_freeze is not None else _env_bool("DECISIONTRAIL_GC_FREEZE", False):
        freeze_heap()
    return Configuration(tracer_provider, processor, exporter, recorder, destination, processor.spool)
