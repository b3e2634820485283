"""A small audit store for the warehouse and report tests: single decisions (two versions, two
labels, reason codes, a hashed applicant id, nested input) inside request spans, and a packed batch."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import decisiontrail
from decisiontrail import record_decision, using_subject
from decisiontrail.conventions import SubjectAttributes as U
from decisiontrail.exporters.file import FileSpanExporter
from decisiontrail.recorder import get_recorder, set_recorder


def record(path: Path, n: int, *, start: int = 0, batch: int = 0, subjects: bool = False,
           **exporter_options: Any) -> None:
    """``n`` single decisions (and a packed batch of ``batch`` rows); with ``subjects``, each about a
    subject (hashed: the policy has a secret) with a business key ``loan_id``, every third with an
    integer ``decision.key.rank`` attribute too (not a string: kept with the other attributes)."""
    cfg = decisiontrail.configure(exporter=FileSpanExporter(path, **exporter_options), set_global=False,  # type: ignore[arg-type]
                                  processor_options={"max_export_batch_size": 16}, hash_keys=["applicant_id"],
                                  hash_secret="s")
    try:
        tracer = cfg.tracer_provider.get_tracer("tests")
        for i in range(start, start + n):
            scope: AbstractContextManager[Any] = using_subject(f"S-{i % 7}", loan_id=f"L-{i}") if subjects else nullcontext()
            extra = {f"{U.KEY}.rank": i} if subjects and i % 3 == 0 else None
            with tracer.start_as_current_span("POST /loans"), scope:
                record_decision("loan", {"applicant_id": f"A-{i}", "income": 1000.0 * i, "nested": {"k": [i, "x"]}},
                                {"p": i / (n + start)}, label="deny" if i % 3 else "approve", score=i / (n + start),
                                version="2" if i % 2 else "1", reason_codes=["debt"] if i % 3 else None,
                                attributes=extra)
        if batch:
            get_recorder().record_batch("batcher", [[float(i), i % 7] for i in range(batch)],
                                        [i % 2 for i in range(batch)], labels=[str(i % 2) for i in range(batch)],
                                        scores=[i / batch for i in range(batch)])
        assert cfg.force_flush()
    finally:
        cfg.shutdown()
        set_recorder(None)
