"""Keeping the export thread from holding the GIL in long stretches.

Everything the export thread does per span (hash chain, encoding) is Python bytecode, and CPython
hands the GIL to a waiting thread only every ``sys.getswitchinterval()`` (5 ms) unless the running
thread gives it up. A 512-span batch chained or encoded in one go would hold a request thread up for
that long. The export-side stages work in chunks of :data:`CHUNK_SPANS` spans and call
:func:`maybe_pause` between chunks: once the thread has worked :data:`SLICE_SECONDS` since it last
gave the GIL up, it gives it up (:func:`pause`, ``time.sleep(0)``). On Linux that sleep lasts the
thread's timer slack (~50-70 µs), long enough for a waiting thread to take the GIL; pausing by time
rather than after every chunk keeps that cost to a small share of the export thread's wall time.
:class:`Chunked` does it around a batch stage such as chain.ChainStage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["pause", "maybe_pause", "chunks", "Chunked", "CHUNK_SPANS", "SLICE_SECONDS"]

CHUNK_SPANS = 16        # spans between two looks at the clock (~0.1-0.2 ms of work)
SLICE_SECONDS = 0.0004  # the longest stretch of work before the GIL is given up

_T = TypeVar("_T")
_perf = time.perf_counter


class _LastPause(threading.local):
    at = 0.0


_last = _LastPause()


def pause() -> None:
    """Let a waiting thread take the GIL."""
    time.sleep(0)
    _last.at = _perf()


def maybe_pause() -> None:
    """:func:`pause` when this thread has worked :data:`SLICE_SECONDS` since its last pause."""
    if _perf() - _last.at >= SLICE_SECONDS:
        pause()


def chunks(items: Sequence[_T], size: int = CHUNK_SPANS) -> Iterator[Sequence[_T]]:
    """Consecutive slices of ``items``, with :func:`maybe_pause` between them."""
    for start in range(0, len(items), size):
        if start:
            maybe_pause()
        yield items[start:start + size]


class Chunked:
    """``stage(spans)`` applied to consecutive chunks of ``chunk`` spans, pausing in between (by
    time, :func:`maybe_pause`). Any other attribute (``chain``, ``after_fork`` …) is the wrapped stage's."""

    stage: Callable[[list[ReadableSpan]], list[ReadableSpan]]
    chunk: int

    def __init__(self, stage: Callable[[list[ReadableSpan]], list[ReadableSpan]], chunk: int = CHUNK_SPANS) -> None:
        object.__setattr__(self, "stage", stage)
        object.__setattr__(self, "chunk", chunk)

    def __call__(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        if len(spans) <= self.chunk:
            return self.stage(spans)
        out: list[ReadableSpan] = []
        for part in chunks(spans, self.chunk):
            out.extend(self.stage(list(part)))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stage, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.stage, name, value)
