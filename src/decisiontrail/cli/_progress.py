"""Progress bars on a terminal only (tqdm), silent otherwise (pipes, CI, logs)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any
from contextlib import contextmanager

__all__ = ["progress", "run_with_progress"]


@contextmanager
def progress(total: int | None, what: str, unit: str = "it") -> Iterator[Callable[[int], None]]:
    """A function that advances a bar of ``total`` (on stderr when it is a TTY; a no-op otherwise)."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the warehouse extra
        yield lambda n: None
        return
    bar = tqdm(total=total, desc=what, unit=unit, unit_scale=True, file=sys.stderr, leave=False)
    try:
        yield bar.update
    finally:
        bar.close()


def run_with_progress(con: Any, sql: str, params: list[Any], what: str) -> int:
    """Execute ``sql`` (a COPY or a query) and return the first value of its result (the rows a COPY
    wrote); on a TTY, a bar follows DuckDB's own estimate of the query's progress."""
    if not sys.stderr.isatty():
        row = con.execute(sql, params).fetchone()
        return int(row[0]) if row else 0
    import threading

    result: list[Any] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            result.append(con.execute(sql, params).fetchone())
        except BaseException as exc:  # re-raised on the caller's thread
            failure.append(exc)

    t = threading.Thread(target=work, daemon=True)
    with progress(100, what, unit="%") as advance:
        t.start()
        done = 0.0
        while t.is_alive():
            t.join(0.2)
            pct = max(float(con.query_progress()), 0.0) if t.is_alive() else 100.0
            if pct > done:
                advance(int(pct) - int(done))
                done = pct
    if failure:
        raise failure[0]
    return int(result[0][0]) if result and result[0] else 0
