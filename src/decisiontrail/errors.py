"""Exceptions of decisiontrail.

    DecisionTrailError                base of everything raised here
    ├── ConfigurationError            misuse: a bad argument to configure() or a decorator (raised at once)
    ├── InvalidRecordError            misuse: a bad argument to record_outcome() / record_review() (raised
    │                                 at once, whatever fail_closed says)
    └── RecordingError                a decision could not be recorded; raised only in fail-closed mode,
        │                             otherwise the failure is logged and counted
        └── DecisionLostError         the decision could not be handed to the export path (fail-closed)

The user's own exceptions (from the predict function) always propagate untouched.
"""

from __future__ import annotations

__all__ = ["DecisionTrailError", "ConfigurationError", "InvalidRecordError", "RecordingError", "DecisionLostError"]


class DecisionTrailError(Exception):
    """Base class of all decisiontrail errors."""


class ConfigurationError(DecisionTrailError, ValueError):
    """Raised by configure() and the decorators when an argument is invalid."""


class InvalidRecordError(DecisionTrailError, ValueError):
    """Raised by record_outcome() and record_review() when called wrongly: a decision id that is not a
    non-empty string, a missing reviewer, an action other than confirm/override/escalate/annotate, an
    override that says neither label nor output. This is API misuse, not a telemetry failure, so it is
    raised in every mode; nothing is recorded. A decision id that is unknown here is not an error."""


class RecordingError(DecisionTrailError):
    """Raised in fail-closed mode when a decision could not be recorded; ``__cause__`` says why."""


class DecisionLostError(RecordingError):
    """Raised in fail-closed mode when a decision could not be queued for export."""
