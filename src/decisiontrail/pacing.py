"""Keeping the export thread from holding the GIL in long stretches.

Everything the export thread does per span (hash chain, encoding) is Python bytecode, and CPython
hands the GIL to a waiting thread only every ``sys.getswitchinterval()`` (5 ms) unless the running
thread gives it up. A 512-span batch chained or encoded in one go would hold a request thread up for
that long. :func:`pause` gives the GIL up for a moment (``time.sleep(0)``); the export-side stages
call it every :data:`CHUNK_SPANS` spans (~0.2 ms of work), and :class:`Chunked` does it around a
batch stage such as chain.ChainStage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["pause", "Chunked", "CHUNK_SPANS"]

CHUNK_SPANS = 16


def pause() -> None:
    """Let a waiting thread take the GIL (a no-op when none waits, ~1 µs)."""
    time.sleep(0)


class Chunked:
    """``stage(spans)`` applied to consecutive chunks of ``chunk`` spans, pausing in between.
    Any other attribute (``chain``, ``after_fork`` …) is the wrapped stage's."""

    stage: Callable[[list[ReadableSpan]], list[ReadableSpan]]
    chunk: int

    def __init__(self, stage: Callable[[list[ReadableSpan]], list[ReadableSpan]], chunk: int = CHUNK_SPANS) -> None:
        object.__setattr__(self, "stage", stage)
        object.__setattr__(self, "chunk", chunk)

    def __call__(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        if len(spans) <= self.chunk:
            return self.stage(spans)
        out: list[ReadableSpan] = []
        for start in range(0, len(spans), self.chunk):
            if start:
                pause()
            out.extend(self.stage(spans[start:start + self.chunk]))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stage, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.stage, name, value)
