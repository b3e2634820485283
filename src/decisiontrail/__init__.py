"""decisiontrail: an audit trail of ML model decisions as OpenTelemetry span events.

Public API (one obvious way each):

- :func:`configure` sets up the tracer provider, AuditSampler, no-loss processor and exporter
  (embedded OTLP-JSON files by default, OTLP when an endpoint is given or ``OTEL_EXPORTER_OTLP_ENDPOINT``
  is set);
- :func:`record_decision` records one decision; :func:`audited` and :func:`decision` are the decorator
  and context-manager forms;
- :func:`record_outcome` and :func:`record_review` record what later happened to a decision and a
  human's review of it (append-only records bound by decision id);
- :func:`register_model` names a model object;
- :func:`using_subject` gives every decision of a block its subject id and business keys.
"""

from __future__ import annotations

from .config import Configuration, configure
from .errors import ConfigurationError, DecisionLostError, DecisionTrailError, InvalidRecordError, RecordingError
from .lifecycle import record_outcome, record_review
from .models import register_model
from .recorder import DecisionHandle, audited, decision, record_decision
from .sampling import AuditSampler
from .subjects import using_subject
from .version import __version__

__all__ = [
    "__version__",
    "configure",
    "Configuration",
    "record_decision",
    "audited",
    "decision",
    "DecisionHandle",
    "record_outcome",
    "record_review",
    "register_model",
    "using_subject",
    "AuditSampler",
    "DecisionTrailError",
    "ConfigurationError",
    "InvalidRecordError",
    "RecordingError",
    "DecisionLostError",
]
