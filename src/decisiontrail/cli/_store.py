"""The ``--data`` / ``--warehouse`` options every reading command shares, and the store they name."""

from __future__ import annotations

import argparse
from typing import Any

from ..store.protocol import DecisionStore, decisions_with_lifecycle, open_store

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
