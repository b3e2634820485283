"""Patching: the wraps an instrumentor makes and undoes, and the instrumentors' base class."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from ._base import ModelCallWrapper
from ._options import InstrumentOptions, check_dependencies

__all__ = ["Patcher", "classes_defined_in", "DecisionInstrumentor"]

_log = logging.getLogger(__name__)


class Patcher:
    """The wraps an instrumentor made, so that ``_uninstrument`` is their exact mirror.

    Class attributes are read and restored statically (``vars(cls)``), never through ``getattr``:
    scikit-learn's ``available_if`` methods are descriptors whose ``__get__`` on the class returns a
    new plain function, so ``opentelemetry.instrumentation.utils.unwrap`` (which uses ``getattr``)
    would put that function back instead of the descriptor and ``hasattr(pipe, "predict_proba")``
    would turn true for every Pipeline.
    """

    def __init__(self) -> None:
        self._done: list[tuple[Any, str, Any]] = []  # (owner, attribute, the wrapper we set)
        self._keys: set[tuple[int, str]] = set()

    def __len__(self) -> int:
        return len(self._done)

    @property
    def wrapped(self) -> list[tuple[Any, str]]:
        return [(owner, name) for owner, name, _ in self._done]

    def wrap_method(self, cls: type, name: str, wrapper: Callable[..., Any]) -> bool:
        """Wrap ``cls.name`` where ``cls`` itself defines it (``name in vars(cls)``)."""
        if (id(cls), name) in self._keys or name not in vars(cls):
            return False
        if "<locals>" in cls.__qualname__:  # not reachable by module path
            return False
        wrapt.wrap_function_wrapper(cls.__module__, f"{cls.__qualname__}.{name}", wrapper)
        self._remember(cls, name, vars(cls)[name])
        return True

    def wrap_function(self, module: Any, name: str, wrapper: Callable[..., Any]) -> bool:
        """Wrap the module-level function ``module.name``."""
        if (id(module), name) in self._keys or not hasattr(module, name):
            return False
        wrapt.wrap_function_wrapper(module, name, wrapper)
        self._remember(module, name, getattr(module, name))
        return True

    def _remember(self, owner: Any, name: str, proxy: Any) -> None:
        self._done.append((owner, name, proxy))
        self._keys.add((id(owner), name))

    def unwrap_all(self) -> None:
        for owner, name, proxy in reversed(self._done):
            if isinstance(owner, type):
                current = vars(owner).get(name)
                if current is proxy and proxy is not None:
                    setattr(owner, name, proxy.__wrapped__)
                else:  # someone wrapped over ours: leave their wrapper in place
                    _log.debug("decisiontrail: %s.%s was re-wrapped; left as is", owner.__qualname__, name)
            else:
                unwrap(owner, name)
        self._done.clear()
        self._keys.clear()


def classes_defined_in(module: Any) -> list[type]:
    """The classes a module defines (not those it imports)."""
    return [c for c in list(vars(module).values()) if isinstance(c, type) and c.__module__ == module.__name__]


class DecisionInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Base of the model instrumentors: options, dependency check, patch bookkeeping.

    A subclass sets ``_instruments`` and writes :meth:`_install`, which registers its wraps with the
    :class:`Patcher` (usually from post-import hooks, so that instrumenting imports nothing);
    ``_uninstrument`` undoes exactly those. ``BaseInstrumentor`` keeps one instance per subclass.
    """

    _instruments: tuple[str, ...] = ()
    _state: ModelCallWrapper | None = None
    _patcher: Patcher | None = None

    def instrumentation_dependencies(self) -> tuple[str, ...]:
        return self._instruments

    def _instrument(self, **kwargs: Any) -> None:
        check_dependencies(self._instruments)
        state = self._new_state(InstrumentOptions.from_kwargs(kwargs))
        self._state, self._patcher = state, Patcher()
        self._install(state, self._patcher)

    def _new_state(self, options: InstrumentOptions) -> ModelCallWrapper:
        return ModelCallWrapper(options)

    def _install(self, state: ModelCallWrapper, patcher: Patcher) -> None:
        raise NotImplementedError

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._state is not None:
            self._state.active = False  # hooks of this instrument() stay registered and do nothing
        if self._patcher is not None:
            self._patcher.unwrap_all()
        self._state = self._patcher = None

    @property
    def wrapped(self) -> list[tuple[Any, str]]:
        """(class or module, attribute) of every wrap in place (tests, diagnostics)."""
        return self._patcher.wrapped if self._patcher is not None else []
