"""Options of every model instrumentor, and the check that the instrumented library is there."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.instrumentation.dependencies import DependencyConflictError, get_dependency_conflicts

__all__ = ["InstrumentOptions", "NameOption", "check_dependencies"]


def check_dependencies(instruments: tuple[str, ...]) -> None:
    """Raise DependencyConflictError when the instrumented library is missing or too old.

    ``opentelemetry-instrument`` checks only a distribution's ``instruments`` extra and then calls
    ``instrument(skip_dep_check=True)``; decisiontrail instruments several libraries from one
    distribution, so each instrumentor checks its own library here (the loader logs and skips it).
    """
    conflict = get_dependency_conflicts(list(instruments))
    if conflict is not None:
        raise DependencyConflictError(conflict)


# -- options ---------------------------------------------------------------------------------------


NameOption = str | Callable[[Any], "str | None"] | None


@dataclass(frozen=True)
class InstrumentOptions:
    """Options of every model instrumentor; each resolves argument > environment > default.

    ``model_name``: the name decisions carry when the model was not named with
    ``decisiontrail.register_model``: a string, or a function of the model object returning a name
    (or None for the default); ``DECISIONTRAIL_MODEL_NAME``; default the model's class name.
    ``model_version``: the version when the model has none registered; default the recorder's
    (``configure(model_version=...)`` or ``DECISIONTRAIL_MODEL_VERSION``).
    """

    model_name: NameOption = None
    model_version: str | None = None

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> InstrumentOptions:
        unknown = set(kwargs) - {"model_name", "model_version"}
        if unknown:
            raise TypeError(f"unexpected instrumentor option(s): {', '.join(sorted(unknown))} "
                            "(the tracer provider is chosen with decisiontrail.configure(tracer_provider=...))")
        name = kwargs.get("model_name")
        if name is not None and not isinstance(name, str) and not callable(name):
            raise TypeError(f"model_name must be a str or a function of the model, not {type(name).__name__}")
        version = kwargs.get("model_version")
        if version is not None and not isinstance(version, (str, int)):
            raise TypeError(f"model_version must be a str, not {type(version).__name__}")
        return cls(
            model_name=name if name is not None else (os.environ.get("DECISIONTRAIL_MODEL_NAME") or None),
            model_version=str(version) if version is not None else None,
        )
