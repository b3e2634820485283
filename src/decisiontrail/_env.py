"""Reading decisiontrail's own environment variables: a bad value warns once and falls back."""

from __future__ import annotations

import logging
import os

__all__ = ["env_bool", "env_int", "env_choice"]

_log = logging.getLogger("decisiontrail.config")


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    _log.warning("decisiontrail: %s=%r is not a boolean; using %s", name, raw, default)
    return default


def env_int(name: str, default: int) -> int:
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


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    raw = os.environ.get(name)
    if not raw:
        return default
    if raw.lower() in choices:
        return raw.lower()
    _log.warning("decisiontrail: %s=%r is not one of %s; using %s", name, raw, choices, default)
    return default
