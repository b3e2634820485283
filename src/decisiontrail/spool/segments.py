"""Spool segments on disk: the writer (:class:`Spool`) and a segment claimed for replay (:class:`Segment`).

Layout (``docs/no-loss.md``): a directory of segment files named ``<UTC nanoseconds>-<pid>-<n>.spool``,
oldest first by name, each line one checksummed record (records.py). A record is written and fsynced
before its decisions count as spooled. The segment being written is closed (so it can be replayed)
when it reaches ``segment_bytes`` or is ``max_segment_age`` seconds old. A segment is deleted only
after every record in it was delivered, dead-lettered or kept aside.

Faults the writer finds and survives, each reported through ``on_problem`` (the processor counts and
logs them): the segment being written was deleted (also with its directory): the directory is made
again and what the deleted file held is written to a new segment, read back through the open
descriptor, so nothing is lost; the directory cannot be written: ``append`` raises OSError and the
processor keeps the batch. A segment of this process that vanished with its directory before it was
replayed is reported through ``on_lost`` with its decision count.

Several processes may share one directory: a process holds an exclusive ``flock`` on the segment it
is writing and on the one it is replaying, so a live writer's segment is never replayed by another
process, and a dead process's segments (its locks are gone) are replayed by whichever process claims
them first. Without ``fcntl`` (Windows) give each process its own directory.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan

from .records import Record, decode, encode

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Spool", "Segment", "SUFFIX", "BAD_SUFFIX", "read_spool_file"]

_log = logging.getLogger(__name__)
SUFFIX = ".spool"
BAD_SUFFIX = ".spool.bad"


def _lock(fd: int, blocking: bool) -> bool:
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - not possible on every platform
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Segment:
    """A spool file claimed (locked) by this process for replay. ``release`` or ``delete`` it."""

    def __init__(self, path: Path, f: IO[bytes], on_delete: Callable[[Path], None] | None = None,
                 on_release: Callable[[Path], None] | None = None) -> None:
        self.path = path
        self._f = f
        self._on_delete = on_delete
        self._on_release = on_release

    def records(self, skip: set[int] | frozenset[int] = frozenset()) -> Iterator[Record]:
        """Each complete line's record, but those in ``skip``. A last line without its newline is
        the torn write of a crashed process: its spans never counted as spooled, so it is skipped
        with a warning."""
        self._f.seek(0)
        for n, raw in enumerate(self._f):
            if n in skip:
                continue
            if not raw.endswith(b"\n"):
                _log.warning("decisiontrail: skipping a torn last line in spool file %s", self.path.name)
                return
            if raw.strip():
                yield decode(raw, n)

    def batches(self, start: int = 0) -> Iterator[tuple[int, list[ReadableSpan]]]:
        """(line number, spans) of each intact record from line ``start`` on; ValueError at a damaged one."""
        for rec in self.records(frozenset(range(start))):
            if not rec.intact:
                raise ValueError(f"line {rec.line + 1} of {self.path.name}: {rec.problem}")
            yield rec.line, rec.spans

    def keep_aside(self, record: Record) -> Path:
        """Append a damaged record to ``<segment>.spool.bad`` (fsynced): kept for an operator, not replayed."""
        target = self.path.with_name(self.path.name[: -len(SUFFIX)] + BAD_SUFFIX)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            _write_all(fd, record.raw if record.raw.endswith(b"\n") else record.raw + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        return target

    def release(self) -> None:
        self._f.close()  # closing the descriptor drops the flock
        if self._on_release is not None:
            self._on_release(self.path)

    @property
    def vanished(self) -> bool:
        """The file is gone from the directory (deleted with it) while this process holds it open."""
        try:
            return os.fstat(self._f.fileno()).st_nlink == 0
        except (OSError, ValueError):
            return True

    def delete(self) -> None:
        try:
            self.path.unlink()
            _fsync_dir(self.path.parent)
        except FileNotFoundError:
            pass
        if self._on_delete is not None:
            self._on_delete(self.path)
        self.release()


class Spool:
    """Append-only segment files in ``directory`` (created on first use, mode 0700, files 0600)."""

    def __init__(self, directory: str | os.PathLike[str], *, segment_bytes: int = 16 * 1024 * 1024,
                 max_segment_age: float = 2.0, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.max_segment_age = max_segment_age
        self.fsync = fsync
        self.on_problem: Callable[[str], None] = lambda why: _log.error("decisiontrail: spool problem: %s", why)
        self.on_lost: Callable[[int, str], None] = lambda n, why: _log.error(
            "decisiontrail: %d spooled decisions lost: %s", n, why)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._opened = 0.0
        self._size = 0
        self._decisions = 0  # in the segment being written
        self._n = 0
        self._dir_id: tuple[int, int] | None = None
        self._closed: dict[Path, int] = {}  # this process's closed segments not yet replayed: decisions
        self._claimed: set[Path] = set()  # segments our replayer holds open (it can still read them)

    # -- writing -----------------------------------------------------------------------------
    # A raw descriptor, no buffer: a fork can never copy half a line into a child that writes it again.
    def _open_locked(self) -> int:
        self._check_directory_locked()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = os.stat(self.directory)
        self._dir_id = (st.st_dev, st.st_ino)
        self._n += 1
        path = self.directory / f"{time.time_ns():020d}-{os.getpid()}-{self._n}{SUFFIX}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)  # RDWR: see _rescue_locked
        _lock(fd, blocking=True)  # a new name: nobody else holds it
        _fsync_dir(self.directory)  # the file itself survives a crash, not only its contents
        self._fd, self._path, self._size, self._decisions, self._opened = fd, path, 0, 0, time.monotonic()
        return fd

    def append(self, spans: Sequence[ReadableSpan], decisions: int = 0) -> None:
        """Write ``spans`` as one record; return once it is on disk (fsync). Raises OSError."""
        if not spans:
            return
        line = encode(spans, decisions)
        with self._lock:
            if self._fd is not None and time.monotonic() - self._opened >= self.max_segment_age:
                self._close_locked()  # old enough: replayable now
            fd = self._fd if self._fd is not None else self._open_locked()
            if self._deleted_locked(fd):
                fd = self._rescue_locked(fd)
            try:
                _write_all(fd, line)
                if self.fsync:
                    os.fsync(fd)
            except OSError:
                self._close_locked()  # the next append starts a fresh segment
                raise
            self._size += len(line)
            self._decisions += decisions
            if self._size >= self.segment_bytes:
                self._close_locked()

    def _deleted_locked(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_nlink == 0
        except OSError:  # pragma: no cover
            return True

    def _rescue_locked(self, old: int) -> int:
        """The segment being written was deleted (or its directory): write what it held to a new
        segment. Raises OSError (the old descriptor stays open, to try again) when that fails."""
        size = os.fstat(old).st_size
        data = os.pread(old, size, 0) if size else b""
        old_path, decisions = self._path, self._decisions
        self._fd = None
        try:
            fd = self._open_locked()
            _write_all(fd, data)
            os.fsync(fd)
        except OSError:
            if self._fd is not None:
                os.close(self._fd)
            self._fd, self._path, self._decisions = old, old_path, decisions
            raise
        os.close(old)
        self._size, self._decisions = len(data), decisions
        self.on_problem(f"spool segment {old_path} was deleted while being written; its {decisions} decisions "
                        f"were written again to {self._path}")
        return fd

    def _check_directory_locked(self) -> None:
        """Report (once) that the directory vanished or was replaced, with this process's closed
        segments in it that were not replayed yet."""
        if self._dir_id is None:
            return
        try:
            st = os.stat(self.directory)
            same = (st.st_dev, st.st_ino) == self._dir_id
        except OSError:
            same = False
        if same:
            return
        self._dir_id = None
        gone = {p: n for p, n in self._closed.items() if not p.exists() and p not in self._claimed}
        for p in gone:
            del self._closed[p]
        self.on_problem(f"the spool directory {self.directory} was deleted or replaced; making it again")
        lost = sum(gone.values())
        if lost:
            self.on_lost(lost, f"{len(gone)} spool segment(s) vanished with the spool directory before replay")

    def check(self) -> None:
        """Look for a deleted directory now (the replayer calls this on each pass)."""
        with self._lock:
            self._check_directory_locked()
            if self._fd is not None and self._deleted_locked(self._fd):
                try:
                    self._rescue_locked(self._fd)
                except OSError as exc:
                    self.on_problem(f"cannot make the spool directory {self.directory} again: {exc!r}")

    def _close_locked(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:  # pragma: no cover
                pass
            if self._path is not None and self._decisions:
                self._closed[self._path] = self._decisions
        self._fd = self._path = None

    def forget(self, path: Path) -> None:
        """``path`` was replayed and deleted (or its records written again elsewhere)."""
        with self._lock:
            self._closed.pop(path, None)

    def roll(self, older_than: float = 0.0) -> bool:
        """Close the segment being written (if open at least ``older_than`` seconds), so it can be
        replayed; False when none was closed."""
        with self._lock:
            if self._fd is None or time.monotonic() - self._opened < older_than:
                return False
            self._close_locked()
            return True

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def after_fork(self) -> None:
        """In a forked child: a new lock, and the inherited segment stays the parent's (closing our
        copy of the descriptor leaves the parent's flock in place)."""
        self._lock = threading.Lock()
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:  # pragma: no cover
                pass
        self._fd = self._path = None
        self._closed = {}
        self._n = 0

    # -- reading -----------------------------------------------------------------------------
    def segments(self) -> list[Path]:
        """Every pending segment (of any process), oldest first."""
        try:
            return sorted(p for p in self.directory.iterdir() if p.name.endswith(SUFFIX))
        except FileNotFoundError:
            return []
        except OSError as exc:  # not a directory, no permission: append() will fail and say so
            _log.warning("decisiontrail: cannot list the spool %s: %r", self.directory, exc)
            return []

    def pending(self) -> bool:
        return bool(self.segments())

    def claim(self, order: Callable[[Path], Any] | None = None, exclude: set[Path] | None = None) -> Segment | None:
        """Lock and return the first segment (by ``order``, else oldest; not in ``exclude``) that
        no live process is writing or replaying, or None."""
        with self._lock:
            own = self._path
        paths = self.segments()
        if order is not None:
            paths.sort(key=order)
        for path in paths:
            if path == own or (exclude and path in exclude):
                continue
            try:
                f = open(path, "rb")
            except FileNotFoundError:  # replayed and deleted by another process meanwhile
                continue
            if not _lock(f.fileno(), blocking=False):
                f.close()
                continue
            try:  # another process may have deleted it between our open and our lock
                same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                f.close()
                continue
            with self._lock:
                self._claimed.add(path)
            return Segment(path, f, self.forget, self._unclaim)
        return None

    def _unclaim(self, path: Path) -> None:
        with self._lock:
            self._claimed.discard(path)


def read_spool_file(path: str | os.PathLike[str]) -> list[dict[str, object]]:
    """The OTLP JSON messages of one spool file (for inspection and tests)."""
    out = []
    with open(path, "rb") as f:
        for raw in f:
            if raw.endswith(b"\n") and raw.strip():
                out.append(json.loads(raw))
    return out
