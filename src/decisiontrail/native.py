"""The optional native accelerator: the ``decisiontrail-native`` distribution (``native/``, Rust).

Off by default: the pure-Python export path is the default, works everywhere, and defines every
byte that is stored. ``configure(native=True)`` > ``DECISIONTRAIL_NATIVE`` > off turns it on for the
process. Asked for by ``configure`` but not installed, it raises ConfigurationError; asked for by
the environment only, it warns once and the Python path is used (a deployment's setting never stops
the recording). Each of the accelerator's functions returns ``None`` for any value it does not
handle, and the caller then takes the Python path; the tests compare both paths byte for byte.

    pip install ./native '.[native]'      # from a checkout
"""

from __future__ import annotations

import logging
import threading
from types import ModuleType

from ._env import env_bool
from .errors import ConfigurationError

__all__ = ["accelerator", "use_native", "INSTALL_HINT"]

INSTALL_HINT = "pip install ./native '.[native]' (from a checkout of decisiontrail)"
_log = logging.getLogger("decisiontrail.config")
_lock = threading.Lock()
_state: list[ModuleType | None | bool] = [False]  # False: not resolved yet; None: off; else the module


def _load(required: bool) -> ModuleType | None:
    try:
        import decisiontrail_native
    except ImportError as exc:
        if required:
            raise ConfigurationError(f"native=True needs the native accelerator: {INSTALL_HINT}") from exc
        _log.warning("decisiontrail: DECISIONTRAIL_NATIVE is on but the native accelerator is not installed "
                     "(%s); using the Python path", INSTALL_HINT)
        return None
    return decisiontrail_native  # type: ignore[no-any-return]


def use_native(flag: bool | None) -> ModuleType | None:
    """Turn the accelerator on (True) or off (False) for the process; None reads
    ``DECISIONTRAIL_NATIVE`` again. Returns the module in use, or None."""
    with _lock:
        on = flag if flag is not None else env_bool("DECISIONTRAIL_NATIVE", False)
        _state[0] = _load(required=flag is True) if on else None
        return _state[0]  # type: ignore[return-value]


def accelerator() -> ModuleType | None:
    """The accelerator module when it is on, else None (resolved from the environment on first use)."""
    state = _state[0]
    if state is False:
        return use_native(None)
    return state  # type: ignore[return-value]
