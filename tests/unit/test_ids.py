from __future__ import annotations

import os
import time
import uuid

from decisiontrail import ids


def test_ids_are_unique_time_ordered_uuid7() -> None:
    made = [ids.new_decision_id() for _ in range(50_000)]
    assert len(set(made)) == len(made)
    assert made == sorted(made)
    u = uuid.UUID(made[0])
    assert u.version == 7 and u.variant == uuid.RFC_4122


def test_id_carries_its_millisecond() -> None:
    before = time.time_ns() // 1_000_000 * 1_000_000
    t = ids.decision_id_time_ns(ids.new_decision_id())
    assert before <= t <= time.time_ns()


def test_batch_reservation_gives_consecutive_addressable_ids() -> None:
    first = ids.new_decision_ids(20_000)  # crosses the 14-bit boundary inside the counter
    rows = [ids.offset_id(first, i) for i in range(20_000)]
    assert rows[0] == first and len(set(rows)) == 20_000 and rows == sorted(rows)
    after = ids.new_decision_id()
    assert after > rows[-1] and after not in rows
    assert all(uuid.UUID(r).version == 7 for r in rows[::997])


def test_child_process_gets_another_node() -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.write(w, ids.new_decision_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(r, 64).decode()
    assert child[-12:] != ids.new_decision_id()[-12:]
