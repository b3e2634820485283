"""The ``--data`` / ``--warehouse`` options every reading command shares, and the store they name."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from ..store.lifecycle import LifecycleIndex
from ..store.protocol import DecisionStore, open_store
from ..store.query import Query
from ..store.reader import DecisionRecord

__all__ = ["add_store_arguments", "store_of", "decisions_with_lifecycle"]


def add_store_arguments(p: Any, *, required: bool = True) -> None:
    p.add_argument("--data", required=required, action="append",
                   help="audit directory or file (embedded store or collector output); repeat it to read "
                        "several (e.g. every gateway's audit directory) as one store")
    p.add_argument("--warehouse", metavar="PATH",
                   help="compacted warehouse to read with the files' tail (default DATA/warehouse, used if "
                        "`decisiontrail compact` has built it; without one the files are scanned)")


def store_of(args: argparse.Namespace, *, use_warehouse: bool | None = None) -> DecisionStore:
    return open_store(args.data, args.warehouse, use_warehouse=use_warehouse)


_LIFECYCLE_FIELDS = frozenset({"effective_label", "outcome", "reviews"})


def decisions_with_lifecycle(store: DecisionStore, query: Query) -> Iterator[DecisionRecord]:
    """The decisions ``query`` selects, each with its outcomes and reviews joined (``lifecycle``). The
    store runs the decision filters; the lifecycle filters (``--where outcome=...`` included) and then
    the limit apply after the join."""
    index = LifecycleIndex(store.records())
    later = [(k, v) for k, v in query.where if k.partition(".")[0] in _LIFECYCLE_FIELDS]
    if not query.needs_lifecycle and not later:
        return index.attach(store.decisions(query))
    inner = replace(query, effective_label=None, reviewed=None, has_outcome=None, limit=None,
                    where=[w for w in query.where if w not in later])
    return query.run(index.attach(store.decisions(inner)))
