"""Process lifecycle hooks of DecisionSpanProcessor: after a fork, at exit, and on SIGTERM."""

from __future__ import annotations

import os
import signal
import threading
import time
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .processor import DecisionSpanProcessor

__all__ = ["after_fork_in_child", "shutdown_at_exit", "handle_sigterm", "die_of_sigterm", "SIGTERM_TIMEOUT",
           "SIGTERM_GRACE", "SIGTERM_NUDGE"]

SIGTERM_TIMEOUT = 2.0  # seconds a SIGTERMed worker spends exporting before it spools the rest
SIGTERM_GRACE = 10.0   # seconds more the handler waits for that shutdown before it lets the interrupted code go on
SIGTERM_NUDGE = 0.5    # seconds after a SIGTERM whose handler has not started before it is sent to the main thread


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
    sends the main thread SIGTERM again once it is done, which this handler then dies of.

    Python runs the handler only once the main thread is back in the interpreter. A SIGTERM that the
    kernel handed to another thread (one a library started), or that came just before the main thread
    entered a blocking wait (a pool worker's wait for its queue's lock), leaves that wait blocked, and
    the worker would never end. So a watcher thread reads the signal's wakeup fd and, when the
    handler has not started within ``SIGTERM_NUDGE``, sends SIGTERM to the main thread itself: a
    signal to its thread makes the wait return (EINTR) and the handler run (:func:`_watch_sigterm`)."""
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
        return
    _watch_sigterm(main, started)


def _watch_sigterm(main: int, started: list[bool]) -> None:
    """Make sure the SIGTERM handler runs: a watcher thread reads the signals' wakeup fd and, for a
    SIGTERM whose handler has not started within ``SIGTERM_NUDGE``, sends SIGTERM to the main thread
    (again, every ``SIGTERM_NUDGE``, until the handler has started). Only where nobody else uses the
    wakeup fd: asyncio's loop sets its own for its signal handlers, and keeps it (no watcher then)."""
    if _wakeup and _wakeup[0] == os.getpid():
        return  # this process has its watcher
    r, w = os.pipe()
    try:
        os.set_blocking(w, False)
        previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except (ValueError, OSError):  # pragma: no cover - not the main thread
        os.close(r)
        os.close(w)
        return
    if previous != -1:  # someone else's: give it back
        signal.set_wakeup_fd(previous)
        os.close(r)
        os.close(w)
        return
    if not _wakeup:
        os.register_at_fork(after_in_child=_forget_watcher_in_child)
    _wakeup[:] = [os.getpid(), r, w]

    def watch() -> None:
        while True:
            try:
                got = os.read(r, 256)
            except OSError:  # pragma: no cover - closed
                return
            if not got:  # pragma: no cover - closed
                return
            while signal.SIGTERM in got and not started:
                time.sleep(SIGTERM_NUDGE)
                if not started:
                    signal.pthread_kill(main, signal.SIGTERM)

    from ..threads import start_thread

    start_thread(watch, "decisiontrail-sigterm-watch")


_wakeup: list[int] = []  # pid, read and write fd of the watcher's pipe, in the process that made it


def _forget_watcher_in_child() -> None:
    """A forked child inherits the wakeup fd but not the thread reading it: its signals would wake
    the parent's watcher (and nudge the parent). Let go of both; the child gets its own watcher when
    decisiontrail installs its SIGTERM handler there."""
    if not _wakeup or _wakeup[0] == os.getpid():
        return
    pid, r, w = _wakeup
    try:
        current = signal.set_wakeup_fd(-1)
        if current != w:  # not ours any more: leave it as it was
            signal.set_wakeup_fd(current)
    except ValueError:  # pragma: no cover - forked from a thread that is not the main one
        pass
    os.close(r)
    os.close(w)
    _wakeup.clear()


def die_of_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
