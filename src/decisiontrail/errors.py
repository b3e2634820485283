"""Exceptions of decisiontrail.

    DecisionTrailError                base of everything raised here
    ├── ConfigurationError            misuse: a bad argument to configure() or a decorator (raised at once)
    └── RecordingError                a decision could not be recorded; raised only in fail-closed mode,
        │                             otherwise the failure is logged and counted
        └── DecisionLostError         the decision could not be handed to the export path (fail-closed)

The user's own exceptions (from the predict function) always propagate untouched.
"""

from __future__ import annotations

__all__ = ["DecisionTrailError", "ConfigurationError", "RecordingError", "DecisionLostError"]


class DecisionTrailError(Exception):
    """Base class of all decisiontrail errors."""


class ConfigurationError(DecisionTrailError, ValueError):
    """Raised by configure() and the decorators when an argument is invalid."""


class RecordingError(DecisionTrailError):
    """Raised in fail-closed mode when a decision could not be recorded; ``__cause__`` says why."""


class DecisionLostError(RecordingError):
    """Raised in fail-closed mode when a decision could not be queued for export."""
