"""Process lifecycle hooks of DecisionSpanProcessor: after a fork, at exit, and on SIGTERM."""

from __future__ import annotations

import os
import signal
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .processor import DecisionSpanProcessor

__all__ = ["after_fork_in_child", "shutdown_at_exit", "handle_sigterm", "die_of_sigterm", "SIGTERM_TIMEOUT",
           "SIGTERM_GRACE"]

SIGTERM_TIMEOUT = 2.0  # seconds a SIGTERMed worker spends exporting before it spools the rest
SIGTERM_GRACE = 10.0   # seconds more the handler waits for that shutdown before it lets the interrupted code go on


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
    SIGTERM as before. ``Pool.terminate()`` (also leaving ``with Pool(...)``) ends workers so.

    The handler runs on the main thread, on top of whatever it interrupted, which may hold a lock
    that the shutdown needs (the processor's, in ``on_end``): so the shutdown runs on a thread of its
    own. The handler waits for it; should it not be done within ``SIGTERM_TIMEOUT + SIGTERM_GRACE``
    (that lock), the handler returns so the interrupted code can let go, and the shutdown thread
    sends the main thread SIGTERM again once it is done, which this handler then dies of."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # the application handles SIGTERM (gunicorn, uvicorn, its own handler)
    ref = weakref.ref(processor)
    main = threading.get_ident()  # installed from the main thread (signal.signal requires it)
    started: list[bool] = []
    done = threading.Event()

    def finish(p: DecisionSpanProcessor) -> None:
        try:
            if not p._closing:
                p.shutdown_timeout = min(p.shutdown_timeout, SIGTERM_TIMEOUT)
                p.shutdown()
        finally:
            done.set()
            signal.pthread_kill(main, signal.SIGTERM)  # the handler dies of it (unless already dying)

    def on_sigterm(signum: int, frame: object) -> None:
        if done.is_set():
            die_of_sigterm()
        if started:  # a second SIGTERM (Pool.terminate can send two) must not cut the first short
            return
        started.append(True)
        p = ref()
        if p is None:
            die_of_sigterm()
        assert p is not None
        if p._closing and not p._finished:
            # A shutdown is under way (the worker was leaving anyway: its exit finalizers) and this
            # handler interrupted it, in this very thread: let it finish, then die of SIGTERM.
            p._die_when_finished = True
            return
        if p._closing:
            die_of_sigterm()
        from ..threads import start_thread

        start_thread(lambda: finish(p), "decisiontrail-sigterm")
        if done.wait(SIGTERM_TIMEOUT + SIGTERM_GRACE):
            die_of_sigterm()

    try:
        signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # pragma: no cover - not the main thread
        pass


def die_of_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
