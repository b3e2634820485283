"""decisiontrail: an audit trail of ML model decisions as OpenTelemetry span events.

Public API (one obvious way each):

- :func:`configure` sets up the tracer provider, AuditSampler, no-loss processor and exporter
  (embedded OTLP-JSON files by default, OTLP when an endpoint is given or ``OTEL_EXPORTER_OTLP_ENDPOINT``
  is set);
- :func:`record_decision` records one decision; :func:`audited` and :func:`decision` are the decorator
  and context-manager forms;
- :func:`register_model` names a model object.
"""

from __future__ import annotations

from .config import Configuration, configure
from .errors import ConfigurationError, DecisionLostError, DecisionTrailError, RecordingError
from .models import register_model
from .recorder import DecisionHandle, audited, decision, record_decision
from .sampling import AuditSampler
from .version import __version__

__all__ = [
    "__version__",
    "configure",
    "Configuration",
    "record_decision",
    "audited",
    "decision",
    "DecisionHandle",
    "register_model",
    "AuditSampler",
    "DecisionTrailError",
    "ConfigurationError",
    "RecordingError",
    "DecisionLostError",
]
