"""Process lifecycle hooks of DecisionSpanProcessor: after a fork, at exit, and on SIGTERM."""

from __future__ import annotations

import os
import signal
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .processor import DecisionSpanProcessor

__all__ = ["after_fork_in_child", "shutdown_at_exit", "handle_sigterm", "die_of_sigterm", "SIGTERM_TIMEOUT"]

SIGTERM_TIMEOUT = 2.0  # seconds a SIGTERMed worker spends exporting before it spools the rest


def after_fork_in_child(ref: weakref.ReferenceType[DecisionSpanProcessor]) -> None:
    processor = ref()
    if processor is not None:
        processor._after_fork()


def shutdown_at_exit(ref: weakref.ReferenceType[DecisionSpanProcessor]) -> None:
    processor = ref()
    if processor is not None:
        processor.shutdown()


def handle_sigterm(processor: DecisionSpanProcessor) -> None:
    """In a forked child or a multiprocessing worker whose SIGTERM does what Python does by default
    (die at once, no exit handlers): deliver or spool what the processor holds first, then die of
    SIGTERM as before. ``Pool.terminate()`` (also leaving ``with Pool(...)``) ends workers so."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # the application handles SIGTERM (gunicorn, uvicorn, its own handler)
    ref = weakref.ref(processor)

    handling: list[bool] = []

    def on_sigterm(signum: int, frame: object) -> None:
        if handling:  # a second SIGTERM (Pool.terminate can send two) must not cut the first short
            return
        handling.append(True)
        p = ref()
        if p is not None and p._closing and not p._finished:
            # A shutdown is under way (the worker was leaving anyway: its exit finalizers) and this
            # handler interrupted it, in this very thread: let it finish, then die of SIGTERM.
            p._die_when_finished = True
            return
        if p is not None and not p._closing:
            p.shutdown_timeout = min(p.shutdown_timeout, SIGTERM_TIMEOUT)
            p.shutdown()
        die_of_sigterm()

    try:
        signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # pragma: no cover - not the main thread
        pass


def die_of_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
