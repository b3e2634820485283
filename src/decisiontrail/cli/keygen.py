"""``decisiontrail keygen``: a new signing key for the checkpoints (Ed25519, or HMAC-SHA256)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import ConfigurationError
from ..signing import keygen

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    k = sub.add_parser("keygen", help="write a new checkpoint signing key (decisiontrail.key + .pub)")
    k.add_argument("--out", required=True, metavar="DIR", help="directory to write the key files to")
    k.add_argument("--hmac", action="store_true",
                   help="a symmetric HMAC-SHA256 key (decisiontrail.hmac) instead of an Ed25519 pair: "
                        "whoever verifies with it can also sign")
    k.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        files, key_id = keygen(args.out, use_hmac=args.hmac)
    except (FileExistsError, ConfigurationError) as exc:
        print(f"decisiontrail keygen: {exc}", file=sys.stderr)
        return 1
    for f in files:
        print(f"wrote {f}")
    print(f"key id {key_id}")
    print(f"record with: DECISIONTRAIL_SIGNING_KEY={files[0]}  (keep it readable by the service only)")
    if not args.hmac:
        print(f"verify with: decisiontrail verify --data DIR --public-key {files[1]}")
    return 0
