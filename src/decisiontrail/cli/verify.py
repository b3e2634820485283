"""``decisiontrail verify``: check the hash chains of a store (tamper evidence)."""

from __future__ import annotations

import argparse
from typing import Any

from .. import chain
from ..store.lifecycle import NOT_FOUND_HERE, iter_records
from ..store import payloads
from ..store.reader import ReadStats, iter_decisions


__all__ = ["register", "run"]


def register(sub: Any) -> None:
    v = sub.add_parser("verify", help="check the hash chains (tamper evidence)",
                       description="Check the hash chains of a store: exit 0 when every chained event "
                                   "checks, 1 when any problem is found.")
    v.add_argument("--data", required=True, action="append",
                   help="audit directory or file; repeat it to verify several directories as one store "
                        "(a chain may span gateways)")
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    stats = ReadStats()
    events: dict[int, dict[str, Any]] = {}  # rows of one packed batch event share its attributes
    rows = 0
    ids: set[str] = set()
    for d in iter_decisions(args.data, stats):
        rows += 1
        ids.add(d.decision_id)
        events.setdefault(id(d.attributes), d.chain_view())
    records = orphans = 0
    for r in iter_records(args.data, stats):  # outcomes and reviews are links of the same chains
        records += 1
        orphans += r.decision_id not in ids
        events[id(r.attributes)] = r.chain_view()
    checked, problems = chain.verify(events.values())
    for p in problems:
        print(p)
    # Offloaded payloads (store/payloads.py): each must be there, with the bytes its hash names.
    missing = payloads.check_payloads(e["attributes"] for e in events.values())
    for line in missing:
        print(line)
    unchained = len(events) - checked
    print(f"{rows} decisions" + (f" and {records} outcome/review records" if records else "")
          + f" in {checked} chained events checked, {len(problems)} problems"
          + (f", {unchained} events without chain" if unchained else "")
          + (f", {stats.duplicates} replayed duplicates ignored" if stats.duplicates else "")
          + (f", {len(missing)} payloads missing or altered" if missing else ""))
    if orphans:
        print(f"{orphans} outcome/review records: {NOT_FOUND_HERE} (recorded all the same)")
    return 1 if problems or missing else 0
