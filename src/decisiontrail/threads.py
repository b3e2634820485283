"""Background threads that leave the process's signals to the main thread.

A signal sent to the process (``kill``, ``Pool.terminate()``) is delivered by the kernel to any
thread that does not block it. Python runs its handlers on the main thread only, and only once that
thread comes back to the interpreter: if the kernel picked one of our threads while the main thread
sits in a blocking call that does not return on its own (a multiprocessing worker waiting for its
task queue's lock), the handler never runs and the process never ends. So every thread decisiontrail
starts blocks SIGTERM and SIGINT; the kernel then delivers them to the main thread, whose blocking
call returns with EINTR and runs the handler.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

__all__ = ["start_thread", "BLOCKED_SIGNALS"]

BLOCKED_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def start_thread(target: Callable[[], object], name: str) -> threading.Thread:
    """Start a daemon thread running ``target`` with :data:`BLOCKED_SIGNALS` blocked (a new thread
    inherits the signal mask of the thread that starts it: blocked here around ``start`` only)."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows: no signal masks
        thread.start()
        return thread
    old = signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED_SIGNALS)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return thread
