"""``decisiontrail pseudonym VALUE``: the pseudonym the recorder stores for a subject id or a hashed
business key, computed with the same secret (``DECISIONTRAIL_HASH_SECRET``) from the environment."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..conventions import SubjectAttributes as U
from ..redaction import RedactionPolicy
from ..subjects import pseudonym_of
from ._args import EXIT_FOUND, UsageError

__all__ = ["register", "run", "subject_filter", "key_filter"]

_SECRET = "DECISIONTRAIL_HASH_SECRET"


def register(sub: Any) -> None:
    p = sub.add_parser("pseudonym", help="print the stored pseudonym of a subject id or hashed key",
                       description="Print the keyed hash (hmac-sha256:...) the recorder stores for VALUE, "
                                   f"with the secret in {_SECRET}: what to search for in the audit trail.")
    p.add_argument("value", metavar="VALUE", help="the subject id or business key, in clear")
    p.set_defaults(func=run)


def _secret() -> str:
    secret = os.environ.get(_SECRET, "")
    if not secret:
        raise UsageError(f"{_SECRET} is not set: give it the secret the recording service uses")
    return secret


def run(args: argparse.Namespace) -> int:
    print(pseudonym_of(args.value, _secret()))
    return EXIT_FOUND


def subject_filter(value: str) -> tuple[str, str]:
    """``query --subject VALUE`` as one field test: the pseudonym when the secret is set (the
    recorder then stores ``enduser.pseudo.id``), else the id in clear (``enduser.id``)."""
    if os.environ.get(_SECRET):
        return U.PSEUDO_ID, pseudonym_of(value, _secret())
    return U.ID, value


def key_filter(item: str) -> tuple[str, str]:
    """``query --key NAME=VALUE`` as one field test on ``decision.key.NAME``: the pseudonym when NAME
    is one of ``DECISIONTRAIL_HASH_KEYS`` (as the recorder stored it), else the value in clear."""
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise UsageError(f"--key takes NAME=VALUE, not {item!r}")
    policy = RedactionPolicy.create(hash_secret="-")  # only the key lists are read from the environment
    if name.lower() in policy.redact_keys:
        raise UsageError(f"{name} is a redact key (DECISIONTRAIL_REDACT_KEYS): it is stored as [REDACTED]")
    if name.lower() in policy.hash_keys:
        return f"{U.KEY}.{name}", pseudonym_of(value, _secret())
    return f"{U.KEY}.{name}", value
