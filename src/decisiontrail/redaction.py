"""Private data is redacted or hashed before it leaves the process.

A :class:`RedactionPolicy` names fields by key, matched case-insensitively at any depth of a
decision's input, output and explanation (dict keys, pandas column names):

- ``redact_keys``: the value is replaced by ``"[REDACTED]"``;
- ``hash_keys``: the value is replaced by ``"hmac-sha256:<32 hex>"``, a keyed hash (HMAC-SHA256 with
  ``hash_secret``), so equal values stay joinable across decisions without being readable and
  without being guessable from a dictionary of likely values.

Every replaced path is listed in ``decision.redacted``. The collector's redaction processor is a
second line of defence (collector-config/otelcol.yaml), never the first.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

from .encoding import canonical_json

__all__ = ["RedactionPolicy", "REDACTED", "pseudonym"]

REDACTED = "[REDACTED]"
_log = logging.getLogger(__name__)


def pseudonym(value: Any, secret: bytes) -> str:
    """``hmac-sha256:<32 hex>`` of the canonical JSON of ``value`` keyed with ``secret``."""
    digest = hmac.new(secret, canonical_json(value).encode(), hashlib.sha256)
    return "hmac-sha256:" + digest.hexdigest()[:32]


def _keys(names: Iterable[str] | None) -> frozenset[str]:
    return frozenset(n.strip().lower() for n in (names or ()) if n.strip())


@dataclass(frozen=True)
class RedactionPolicy:
    redact_keys: frozenset[str] = frozenset()
    hash_keys: frozenset[str] = frozenset()
    hash_secret: bytes = field(default=b"", repr=False)

    @classmethod
    def create(
        cls,
        redact_keys: Iterable[str] | None = None,
        hash_keys: Iterable[str] | None = None,
        hash_secret: str | bytes | None = None,
    ) -> RedactionPolicy:
        """Build a policy; unset arguments come from ``DECISIONTRAIL_REDACT_KEYS``,
        ``DECISIONTRAIL_HASH_KEYS`` (comma-separated) and ``DECISIONTRAIL_HASH_SECRET``."""
        if redact_keys is None:
            redact_keys = os.environ.get("DECISIONTRAIL_REDACT_KEYS", "").split(",")
        if hash_keys is None:
            hash_keys = os.environ.get("DECISIONTRAIL_HASH_KEYS", "").split(",")
        if hash_secret is None:
            hash_secret = os.environ.get("DECISIONTRAIL_HASH_SECRET", "")
        secret = hash_secret.encode() if isinstance(hash_secret, str) else bytes(hash_secret)
        hashed = _keys(hash_keys)
        if hashed and not secret:
            _log.warning(
                "decisiontrail: hash_keys are set but no hash secret (DECISIONTRAIL_HASH_SECRET); "
                "using a random per-process secret, so hashed values join only within this process"
            )
            secret = os.urandom(32)
        return cls(_keys(redact_keys), hashed, secret)

    @property
    def active(self) -> bool:
        return bool(self.redact_keys or self.hash_keys)

    def pseudonym(self, value: Any) -> str:
        return pseudonym(value, self.hash_secret)

    def apply(self, value: Any, path: str, redacted: list[str]) -> Any:
        """Return ``value`` (a plain JSON-safe structure) with private fields replaced; the path
        of each replacement is appended to ``redacted``."""
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                lk = k.lower()
                sub = f"{path}.{k}"
                if lk in self.redact_keys:
                    out[k] = REDACTED
                    redacted.append(sub)
                elif lk in self.hash_keys:
                    out[k] = self.pseudonym(v)
                    redacted.append(sub)
                else:
                    out[k] = self.apply(v, sub, redacted)
            return out
        if isinstance(value, list):
            return [self.apply(v, f"{path}[{i}]", redacted) for i, v in enumerate(value)]
        return value
