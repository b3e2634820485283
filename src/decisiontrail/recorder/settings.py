"""What a Recorder is told: its settings, and the attribute value types the application may give."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .._env import env_bool, env_int
from ..encoding import DEFAULT_MAX_CHARS, DEFAULT_MAX_DEPTH
from ..models import default_version
from ..redaction import RedactionPolicy
from ..store.payloads import PayloadStore, payload_store_from_env

__all__ = ["RecorderSettings", "AttributeValue"]

AttributeValue = str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int] | Sequence[float]


@dataclass(frozen=True)
class RecorderSettings:
    max_chars: int = DEFAULT_MAX_CHARS
    max_depth: int = DEFAULT_MAX_DEPTH
    fail_closed: bool = False
    hash_artifacts: bool = True
    redaction: RedactionPolicy = field(default_factory=RedactionPolicy)
    model_version: str | None = field(default_factory=default_version)
    payload_store: PayloadStore | None = None  # full texts of bounded fields (store/payloads.py)
    own_spans: bool = False  # each decision on a span of its own, ended at once (durability="sync")

    @classmethod
    def from_env(cls) -> RecorderSettings:
        """Settings from ``DECISIONTRAIL_MAX_CHARS``, ``DECISIONTRAIL_FAIL_CLOSED``, the redaction
        variables (redaction.py), ``DECISIONTRAIL_MODEL_VERSION`` and ``DECISIONTRAIL_PAYLOAD_STORE``:
        what a zero-code process gets."""
        return cls(max_chars=env_int("DECISIONTRAIL_MAX_CHARS", DEFAULT_MAX_CHARS),
                   fail_closed=env_bool("DECISIONTRAIL_FAIL_CLOSED", False),
                   redaction=RedactionPolicy.create(), payload_store=payload_store_from_env())
