"""SIGTERM in a forked worker: decisiontrail's threads leave it to the main thread, and the handler
never runs the shutdown on the stack of the code it interrupted (which may hold the processor's lock).
Each scenario runs in a fresh interpreter that forks the worker, as ``multiprocessing.Pool`` does."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from decisiontrail.store.reader import iter_decisions
from decisiontrail.threads import BLOCKED_SIGNALS, start_thread

WORKER = textwrap.dedent("""
    import multiprocessing, signal, sys, threading, time
    import decisiontrail
    from decisiontrail import record_decision
    from decisiontrail.processing import hooks

    data, mode, ids_path = sys.argv[1], sys.argv[2], sys.argv[3]
    hooks.SIGTERM_GRACE = 0.0  # the handler lets the interrupted code go on after SIGTERM_TIMEOUT
    cfg = decisiontrail.configure(path=data, service_name="signals", set_global=False,
                                  processor_options={"schedule_delay_millis": 60_000})  # all stay queued
    ctx = multiprocessing.get_context("fork")
    held, ready = ctx.Lock(), ctx.Event()
    held.acquire()  # the worker blocks on it for good, as pool workers block on their queue's lock

    def work():
        ids = [record_decision("credit", {"i": i}, i % 2) for i in range(200)]
        open(ids_path, "w").write("\\n".join(ids))
        if mode == "holding-the-processor-lock":
            with cfg.processor._lock:  # SIGTERM lands while on_end would hold it
                ready.set()
                time.sleep(3.0)
        elif mode == "signal-to-another-thread":
            # A thread that decisiontrail did not start (a library's), so it does not block SIGTERM:
            # it takes the signal, the main thread's semaphore wait goes on (no EINTR there).
            def other():
                time.sleep(0.5)
                signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
                time.sleep(120)
            threading.Thread(target=other, daemon=True).start()
            ready.set()
        else:
            ready.set()
        held.acquire()  # blocked in a semaphore wait, which returns on a signal only to its thread

    worker = ctx.Process(target=work)
    worker.start()
    assert ready.wait(60)
    time.sleep(0.2)
    if mode != "signal-to-another-thread":
        worker.terminate()  # SIGTERM, as Pool.terminate() and leaving `with Pool(...)` send
    worker.join(60)
    print("exitcode", worker.exitcode, flush=True)
    if worker.exitcode is None:
        worker.kill()
""")


def run_worker(tmp_path: Path, mode: str) -> tuple[int | None, list[str], set[str]]:
    data, ids_path = tmp_path / "data", tmp_path / "ids"
    out = subprocess.run([sys.executable, "-c", WORKER, str(data), mode, str(ids_path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("exitcode ")]
    code = line.split()[1]
    ids = ids_path.read_text().split()
    stored = {d.decision_id for d in iter_decisions(data)} if data.is_dir() else set()
    return (None if code == "None" else int(code)), ids, stored


def test_a_worker_blocked_on_a_lock_spools_its_queue_and_dies_of_sigterm(tmp_path: Path) -> None:
    code, ids, stored = run_worker(tmp_path, "blocked")
    assert code == -signal.SIGTERM
    assert len(ids) == 200 and set(ids) <= stored


def test_sigterm_while_the_processor_lock_is_held_neither_hangs_nor_loses(tmp_path: Path) -> None:
    """The handler interrupts code that holds the processor's lock: a shutdown on the handler's own
    stack would wait for that lock forever (the worker never ends, ``Pool`` hangs on joining it)."""
    code, ids, stored = run_worker(tmp_path, "holding-the-processor-lock")
    assert code == -signal.SIGTERM, "the worker ended of its SIGTERM (None: it hung)"
    assert len(ids) == 200 and set(ids) <= stored


def test_sigterm_taken_by_another_thread_still_ends_the_worker(tmp_path: Path) -> None:
    """The kernel hands a process's SIGTERM to any thread that does not block it (or it comes just
    before the main thread enters its wait): the main thread's wait does not return, Python's
    handler never runs, and a pool worker would never end. The watcher sends it on to the main thread."""
    code, ids, stored = run_worker(tmp_path, "signal-to-another-thread")
    assert code == -signal.SIGTERM, "the worker ended of its SIGTERM (None: it hung)"
    assert len(ids) == 200 and set(ids) <= stored


def test_threads_started_by_decisiontrail_block_the_process_signals() -> None:
    seen: list[set[int]] = []
    t = start_thread(lambda: seen.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, []))), "probe")
    t.join(10)
    assert seen and BLOCKED_SIGNALS <= seen[0]
    assert not BLOCKED_SIGNALS & set(signal.pthread_sigmask(signal.SIG_BLOCK, [])), "the caller's mask restored"
    assert threading.current_thread() is threading.main_thread()
