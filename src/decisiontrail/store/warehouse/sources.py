"""The part of the audit files not yet in the warehouse, cut into chunks of complete lines.

Every audit file the store reader accepts is read from where the manifest says the last commit
stopped: plain lines up to the last complete line (a line being written is left for the next run),
the collector's length-prefixed zstd frames up to the last complete frame, a whole-file zstd archive
in one piece. Each chunk is written as plain NDJSON to the staging directory for DuckDB to read, and
carries the source positions as of its end, so a commit records exactly what it holds. A chunk is
kept in memory (:mod:`.ingest` parses it there) and written as plain NDJSON to the staging directory
only for the lines DuckDB parses. Source files are only ever opened for reading.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..reader import _ZSTD_MAGIC, _zstd, iter_files
from .layout import Source

__all__ = ["Chunk", "iter_chunks", "source_key", "pending_bytes", "HEAD_BYTES"]

HEAD_BYTES = 4096
_READ = 4 * 1024 * 1024


@dataclass
class Chunk:
    path: Path
    """Where :meth:`write` puts the chunk as a file."""
    nbytes: int
    longest: int
    """Length of the longest line (DuckDB's reader needs a buffer at least that large)."""
    sources: dict[str, Source]
    """Every source's position as of the end of this chunk, keyed by :func:`source_key`."""
    blobs: list[bytes] = field(default_factory=list)
    """The chunk's complete lines, in blocks each ending with a newline."""

    def write(self) -> Path:
        """The chunk as an NDJSON file (at :attr:`path`), for DuckDB's reader."""
        with open(self.path, "wb") as f:
            f.writelines(self.blobs)
        return self.path


def source_key(s: Source) -> str:
    return f"{s.dev}:{s.ino}:{s.path}"


def _head(f: Path, n: int) -> str:
    with open(f, "rb") as fh:
        return hashlib.sha256(fh.read(min(n, HEAD_BYTES))).hexdigest()


def _resume(f: Path, known: Sequence[Source]) -> Source:
    """Where to start reading ``f``: its committed position if it is a file we know (same inode, or
    same path, with the same first bytes), else 0."""
    st = f.stat()
    path = str(f.resolve())
    candidates = [s for s in known if (s.dev, s.ino) == (st.st_dev, st.st_ino)] + \
                 [s for s in known if s.path == path and (s.dev, s.ino) != (st.st_dev, st.st_ino)]
    for s in candidates:
        if s.offset <= st.st_size and _head(f, s.offset) == s.head:
            return replace(s, path=path, dev=st.st_dev, ino=st.st_ino, size=st.st_size)
    return Source(path=path, dev=st.st_dev, ino=st.st_ino, offset=0, head=_head(f, 0), size=st.st_size)


def _longest_line(data: bytes) -> int:
    """Length of the longest line of ``data`` (found without copying it: lines are OTLP batches,
    few and long)."""
    longest = start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            return max(longest, len(data) - start)
        longest = max(longest, end - start)
        start = end + 1


class _ChunkWriter:
    def __init__(self, staging: Path, chunk_bytes: int) -> None:
        self.staging = staging
        self.chunk_bytes = chunk_bytes
        self.n = 0
        self.sources: dict[str, Source] = {}
        self._out: list[bytes] = []
        self._size = 0
        self._longest = 0

    def add(self, data: bytes) -> None:
        if data:
            self._out.append(data if data.endswith(b"\n") else data + b"\n")
            self._size += len(self._out[-1])
            self._longest = max(self._longest, _longest_line(data))

    @property
    def size(self) -> int:
        return self._size

    @property
    def full(self) -> bool:
        return self._size >= self.chunk_bytes

    def flush(self) -> Chunk | None:
        if not self._size:
            return None
        path = self.staging / f"chunk-{self.n:06d}.ndjson"
        self.n += 1
        chunk = Chunk(path, self._size, self._longest, dict(self.sources), self._out)
        self._out, self._size, self._longest = [], 0, 0
        return chunk


def _plain(f: Path, src: Source, w: _ChunkWriter) -> Iterator[Chunk]:
    key = source_key(src)
    with open(f, "rb") as fh:
        fh.seek(src.offset)
        pending = b""
        while True:
            block = fh.read(_READ)
            if not block:
                return  # what is left in pending is a line still being written
            pending += block
            while True:
                room = max(w.chunk_bytes - w.size, 1)
                cut = pending.rfind(b"\n", 0, room)
                if cut < 0:
                    cut = pending.find(b"\n", room)  # one line longer than the room left
                if cut < 0:
                    break
                w.add(pending[: cut + 1])
                before = src.offset
                src.offset += cut + 1
                pending = pending[cut + 1:]
                if before < HEAD_BYTES:
                    src.head = _head(f, src.offset)
                w.sources[key] = replace(src)
                if w.full:
                    chunk = w.flush()
                    if chunk:
                        yield chunk


def _framed(f: Path, src: Source, w: _ChunkWriter) -> Iterator[Chunk]:
    key = source_key(src)
    dctx = _zstd().ZstdDecompressor()
    with open(f, "rb") as fh:
        fh.seek(src.offset)
        while True:
            head = fh.read(4)
            if len(head) < 4:
                return
            (n,) = struct.unpack(">I", head)
            frame = fh.read(n)
            if len(frame) < n:
                return  # a frame still being written
            try:
                w.add(dctx.decompressobj().decompress(frame))
            except Exception:
                pass  # an undecodable frame: skipped, as the store reader does
            before = src.offset
            src.offset += 4 + n
            if before < HEAD_BYTES:
                src.head = _head(f, src.offset)
            w.sources[key] = replace(src)
            if w.full:
                chunk = w.flush()
                if chunk:
                    yield chunk


def _whole_zstd(f: Path, src: Source, w: _ChunkWriter) -> Iterator[Chunk]:
    key = source_key(src)
    if src.offset == src.size:
        return
    try:
        with open(f, "rb") as fh:
            data = _zstd().ZstdDecompressor().stream_reader(fh, read_across_frames=True).read()
    except Exception:
        return  # incomplete or corrupt archive: tried again next run
    w.add(data)
    src.offset = src.size
    src.head = _head(f, src.offset)
    w.sources[key] = replace(src)
    if w.full:
        chunk = w.flush()
        if chunk:
            yield chunk


def iter_chunks(paths: Sequence[str | Path], known: Sequence[Source], staging: Path,
                chunk_bytes: int = 32 * 1024 * 1024, exclude: Path | None = None) -> Iterator[Chunk]:
    """Chunks of the new complete lines of every audit file under ``paths``, oldest file first.
    Files under ``exclude`` (the warehouse itself) are skipped."""
    w = _ChunkWriter(staging, chunk_bytes)
    files = [f for f in iter_files(list(paths))
             if exclude is None or not f.resolve().is_relative_to(exclude.resolve())]
    for f in files:
        src = _resume(f, known)
        w.sources[source_key(src)] = replace(src)
        if src.offset >= src.size:
            continue
        with open(f, "rb") as fh:
            magic = fh.read(8)
        if magic[4:8] == _ZSTD_MAGIC:
            yield from _framed(f, src, w)
        elif magic[:4] == _ZSTD_MAGIC:
            yield from _whole_zstd(f, src, w)
        else:
            yield from _plain(f, src, w)
    last = w.flush()
    if last is not None:
        yield last
    elif w.sources:
        yield Chunk(staging / "empty", 0, 0, dict(w.sources))


def pending_bytes(paths: Sequence[str | Path], warehouse: Path) -> int:
    """About how many bytes a compaction will read (for its progress bar)."""
    from .layout import load_manifest

    manifest = load_manifest(warehouse) if warehouse.is_dir() else None
    known = manifest.sources if manifest else []
    total = 0
    for f in iter_files(list(paths)):
        if not f.resolve().is_relative_to(warehouse.resolve()):
            src = _resume(f, known)
            total += max(src.size - src.offset, 0)
    return total
