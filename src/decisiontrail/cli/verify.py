"""``decisiontrail verify``: prove a store untouched (hash chains, signed checkpoints, anchors).

Exit 0 with one summary line per chain when nothing is wrong; 1 with one line per problem (where and
what) otherwise, and for a store that holds no audit records ("nothing to verify"); 2 for a
directory that does not exist ("nothing to verify: no audit data at ..."). Whatever the keys and
anchors given cannot prove is said in plain words after the summary.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..anchors import AnchorStore
from ..conventions import DECISION_EVENT
from ..errors import ConfigurationError
from ..signing import Verifier, load_verifier
from ..store import payloads
from ..store.lifecycle import NOT_FOUND_HERE
from ..verification import audit_events, verify_records
from ._args import UsageError
from ._store import add_store_arguments, store_of

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    v = sub.add_parser("verify", help="prove a store untouched: hash chains, signed checkpoints, anchors",
                       description="Check the hash chains, signed checkpoints and anchors of a store: exit 0 "
                                   "when every chain checks (one summary line each), 1 when any problem is "
                                   "found or there is nothing to verify.")
    add_store_arguments(v)
    v.add_argument("--public-key", action="append", default=[], metavar="PATH",
                   help="a key that may have signed the checkpoints (decisiontrail.pub, or the HMAC key "
                        "file); repeat it for keys that rotated")
    v.add_argument("--anchors", metavar="DIR", help="the anchor store the recording processes appended "
                   "their checkpoints to (shows removed chains and cut tails)")
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    verifiers: dict[bytes, Verifier] | None = None
    if args.public_key:
        verifiers = {}
        for path in args.public_key:
            try:
                v = load_verifier(path)
            except ConfigurationError as exc:
                print(f"decisiontrail verify: {path}: {exc}", file=sys.stderr)
                return 2
            verifiers[v.key_id] = v
    anchors = None
    if args.anchors:
        anchor_store = AnchorStore(args.anchors)
        if not anchor_store.directory.is_dir():
            print(f"decisiontrail verify: no anchor store at {args.anchors}", file=sys.stderr)
            return 2
        anchors = [(str(p), text) for p, text in anchor_store.notes()]
    try:
        store = store_of(args)
        stats = store.stats
        events = list(audit_events(store.audit_spans()))
    except FileNotFoundError as exc:  # a mistyped path: a usage error (exit 2), saying so
        raise UsageError(f"nothing to verify: {exc}") from exc
    report = verify_records(events, verifiers, anchors)
    # Offloaded payloads (store/payloads.py): each must be there, with the bytes its hash names.
    missing = payloads.check_payloads(e.attributes for e in events if e.name == DECISION_EVENT)
    for p in report.problems:
        print(p)
    for line in missing:
        print(line)
    for c in report.chains:
        print(c)
    if report.chains:
        print(f"{len(report.chains)} chain(s), {report.decisions} decisions"
              + (f", {report.records} outcome/review records" if report.records else "")
              + f", {len(report.problems)} problem(s)"
              + (f", {len(missing)} payloads missing or altered" if missing else "")
              + (f", {stats.bad_lines} unreadable lines skipped" if stats.bad_lines else ""))
    if report.orphans:
        print(f"{report.orphans} outcome/review records: {NOT_FOUND_HERE} (recorded all the same)")
    for line in report.not_proven:
        print(f"not proven: {line}")
    if report.ok and not missing:
        print("verified: " + ("signed by key " + ", ".join(sorted({k for c in report.chains for k in c.key_ids}))
                              if verifiers else "chains intact, signatures not checked")
              + (", every anchored checkpoint present" if anchors is not None else ""))
    return 0 if report.ok and not missing else 1
