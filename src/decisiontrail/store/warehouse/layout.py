"""Where the warehouse keeps what, and its manifest: the one file that says what is committed.

```
<warehouse>/
  MANIFEST                                   JSON: committed parts + how far each source was read
  decisions/date=YYYY-MM-DD/model=<name>/part-<commit>-<n>.parquet
  spans/date=YYYY-MM-DD/part-<commit>-<n>.parquet
  _staging/                                  a running compaction's files (never read)
  .lock                                      held by the one compaction allowed at a time
```

A part is written under ``_staging``, fsynced, renamed into its partition, and only then listed in a
new MANIFEST (written to a temporary file, fsynced, renamed over the old one: the commit point).
Readers only read the parts the MANIFEST lists, so a partial part or a crashed run's leftovers are
never seen; the next compaction deletes them and redoes the work from the committed offsets.
Partition values are percent-encoded (DuckDB's hive writer), so any model name makes a valid path.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST", "FORMAT", "Part", "Source", "Manifest", "load_manifest", "write_manifest",
           "fsync_dir", "part_date", "part_model"]

MANIFEST = "MANIFEST"
FORMAT = 1
TABLES = ("decisions", "spans")


@dataclass
class Part:
    path: str
    """Relative to the warehouse directory, with ``/`` separators."""
    rows: int


@dataclass
class Source:
    """How much of one audit file is compacted: ``offset`` bytes of complete lines (or frames).
    A file is recognised by device and inode (a rotated file keeps them) or path, and its first
    bytes (``head``: sha256 of the first ``min(offset, 4096)`` bytes), so a reused inode or a
    replaced file is read again from the start."""

    path: str
    dev: int
    ino: int
    offset: int
    head: str
    size: int = 0


@dataclass
class Manifest:
    commit: int = 0
    decisions: list[Part] = field(default_factory=list)
    spans: list[Part] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    format: int = FORMAT

    def parts(self, table: str) -> list[Part]:
        return self.decisions if table == "decisions" else self.spans

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_manifest(warehouse: Path) -> Manifest | None:
    """The committed manifest, or None when ``warehouse`` has none (no compaction committed yet)."""
    try:
        raw = json.loads((warehouse / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    if raw.get("format") != FORMAT:
        raise ValueError(f"{warehouse / MANIFEST}: unknown warehouse format {raw.get('format')!r}")
    return Manifest(commit=int(raw["commit"]),
                    decisions=[Part(**p) for p in raw.get("decisions", [])],
                    spans=[Part(**p) for p in raw.get("spans", [])],
                    sources=[Source(**s) for s in raw.get("sources", [])])


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(warehouse: Path, manifest: Manifest) -> None:
    """Atomically replace the manifest (the commit point of a compaction)."""
    tmp = warehouse / f".{MANIFEST}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest.to_json(), f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, warehouse / MANIFEST)
    fsync_dir(warehouse)


def _partition_value(path: str, key: str) -> str | None:
    prefix = key + "="
    for segment in path.split("/"):
        if segment.startswith(prefix):
            return segment[len(prefix):]
    return None


def part_date(path: str) -> str | None:
    """The ``date=`` partition of a part path (``YYYY-MM-DD``)."""
    return _partition_value(path, "date")


def part_model(path: str) -> str | None:
    """The ``model=`` partition of a part path, percent-decoded."""
    from urllib.parse import unquote

    value = _partition_value(path, "model")
    return unquote(value) if value is not None else None
