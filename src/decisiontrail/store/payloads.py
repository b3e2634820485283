"""Full payloads by reference: a content-addressed store for the fields over the size cap.

With ``configure(payload_store=...)`` / ``DECISIONTRAIL_PAYLOAD_STORE``, the full canonical JSON of
a bounded input, output or explanation is written here by the recording thread, before its
decision can be exported, and the decision carries ``decision.input.ref`` (``.output.ref``,
``.explanation.ref``) next to the field's ``*.hash``. Like the OTel GenAI conventions' ``*_ref``
attributes and OpenInference's blob uploads, the span stays small and the reference exact.

- Location: a directory (the default; ``file://`` URLs too), or an fsspec URL (``s3://bucket/dt``,
  ``gs://…``, ``memory://…``), which needs ``pip install 'decisiontrail[fsspec]'`` and the
  filesystem's own package (``s3fs``, ``gcsfs``).
- Layout: ``<location>/sha256/<first 2 hex>/<64 hex>.json``, the exact UTF-8 bytes whose sha256 is
  the field's hash; the reference is that object's URL. Writes are atomic (temporary file, fsync,
  rename) and idempotent: an object already there is not written again.
- A failed write never drops the decision: it goes out with its markers and without a reference,
  ``decision.error`` says why, ``stats`` counts ``payload_errors``, the log says so, and under
  fail-closed the recording call raises RecordingError once the decision is recorded.

:func:`fetch` reads a payload back and checks it against its hash; :func:`expand` and
:func:`full_text` are ``decisiontrail show``'s (``--payload input`` writes the exact bytes);
:func:`check_payloads` reports missing or altered payloads (``decisiontrail verify``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..conventions import DecisionAttributes as D

__all__ = ["PayloadStore", "PayloadError", "fetch", "check_payloads", "payload_store_from_env", "expand",
           "full_text", "FIELDS"]

_log = logging.getLogger(__name__)

FIELDS = {"input": (D.INPUT_REF, D.INPUT_HASH), "output": (D.OUTPUT_REF, D.OUTPUT_HASH),
          "explanation": (D.EXPLANATION_REF, D.EXPLANATION_HASH)}
"""Field name -> (reference attribute, hash attribute)."""


class PayloadError(Exception):
    """A payload that cannot be read back, or whose bytes do not match its hash."""


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _local_path(url: str) -> Path:
    return Path(unquote(urlparse(url).path)) if url.startswith("file://") else Path(url)


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError as exc:
        raise PayloadError("a remote payload store needs: pip install 'decisiontrail[fsspec]'") from exc
    return fsspec


class PayloadStore:
    """One content-addressed store; :meth:`put` is thread-safe and idempotent."""

    def __init__(self, location: str | os.PathLike[str]) -> None:
        loc = os.fspath(location)
        if _is_local(loc):
            self.root: Path | None = _local_path(loc).resolve()
            self.url = self.root.as_uri()
        else:
            _fsspec()  # fail at configuration time, not at the first big decision
            self.root = None
            self.url = loc.rstrip("/")

    def __repr__(self) -> str:
        return f"PayloadStore({self.url!r})"

    def ref(self, hex_digest: str) -> str:
        return f"{self.url}/sha256/{hex_digest[:2]}/{hex_digest}.json"

    def put(self, text: str) -> str:
        """Store ``text`` (UTF-8) under its sha256 and return its reference."""
        data = text.encode("utf-8", "surrogatepass")
        ref = self.ref(hashlib.sha256(data).hexdigest())
        if self.root is None:
            fs, path = _fsspec().core.url_to_fs(ref)
            if not fs.exists(path):
                fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                with fs.open(path + ".part", "wb") as f:
                    f.write(data)
                fs.mv(path + ".part", path)
            return ref
        path = _local_path(ref)
        if path.exists():
            return ref
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ref

    def offload(self, attrs: dict[str, Any], ref_key: str, full: str) -> str | None:
        """Write ``full`` and set ``attrs[ref_key]``; on failure, count, log and return the error
        (the caller records it in ``decision.error``) instead of raising."""
        try:
            attrs[ref_key] = self.put(full)
            return None
        except Exception as exc:
            from .. import stats

            stats.add("payload_errors")
            _log.error("decisiontrail: writing a payload to %s failed: %r; the decision is recorded with "
                       "its bounded summary and no %s (%d payload errors so far)", self.url, exc, ref_key,
                       stats.snapshot()["payload_errors"])
            return f"payload store: {type(exc).__name__}: {exc}"[:500]

    def locate(self, ref: str) -> str:
        """Where this store keeps the object a reference (possibly from another store) names."""
        return self.ref(ref.rstrip("/").rsplit("/", 1)[-1].removesuffix(".json"))


def payload_store_from_env() -> PayloadStore | None:
    """The store ``DECISIONTRAIL_PAYLOAD_STORE`` names (a bad one warns, and there is none)."""
    location = os.environ.get("DECISIONTRAIL_PAYLOAD_STORE", "").strip()
    if not location:
        return None
    try:
        return PayloadStore(location)
    except Exception as exc:
        _log.warning("decisiontrail: DECISIONTRAIL_PAYLOAD_STORE=%r unusable (%s); bounded fields are "
                     "recorded without their full payloads", location, exc)
        return None


def _read(ref: str) -> bytes:
    if _is_local(ref):
        return _local_path(ref).read_bytes()
    with _fsspec().open(ref, "rb") as f:
        data: bytes = f.read()
        return data


def fetch(ref: str, expected_hash: str | None, store: PayloadStore | None = None) -> bytes:
    """The payload a reference names (read from ``store`` instead, when given: a moved or mirrored
    store), checked against ``expected_hash`` (``sha256:<hex>``). Raises PayloadError."""
    where = store.locate(ref) if store is not None else ref
    try:
        data = _read(where)
    except PayloadError:
        raise
    except Exception as exc:
        raise PayloadError(f"payload missing: {where} ({type(exc).__name__})") from exc
    got = "sha256:" + hashlib.sha256(data).hexdigest()
    if expected_hash is None or got != expected_hash:
        raise PayloadError(f"payload altered: {where} has {got}, the decision says {expected_hash}")
    return data


def check_payloads(events: Iterable[Mapping[str, Any]], store: PayloadStore | None = None) -> list[str]:
    """One line per missing or altered payload among the events' attributes."""
    problems = []
    for attrs in events:
        for name, (ref_key, hash_key) in FIELDS.items():
            ref = attrs.get(ref_key)
            if ref is None:
                continue
            try:
                fetch(str(ref), attrs.get(hash_key), store)
            except PayloadError as exc:
                problems.append(f"decision {attrs.get(D.ID, '-')} {name}: {exc}")
    return problems


def expand(record: Any, out: dict[str, Any], store: PayloadStore | None = None) -> None:
    """In ``out`` (a decision's flat form), replace each offloaded field's summary by its full value,
    fetched and checked against its hash; ``payloads`` says which, ``payload_problems`` what failed."""
    for name, (ref_key, hash_key) in FIELDS.items():
        ref = record.attributes.get(ref_key)
        if ref is None:
            continue
        try:
            value = json.loads(fetch(str(ref), record.attributes.get(hash_key), store))
        except (PayloadError, ValueError) as exc:
            out.setdefault("payload_problems", []).append(f"{name}: {exc}")
            continue
        if record.row is not None and name == "input" and isinstance(value, dict):  # a packed batch row
            columns, rows = value.get("columns"), value.get("rows") or []
            row = rows[record.row] if record.row < len(rows) else None
            value = dict(zip(columns, row)) if columns and row is not None else row
        elif record.row is not None and isinstance(value, list):
            value = value[record.row] if record.row < len(value) else None
        out[D.EXPLANATION if name == "explanation" else name] = value  # the keys of DecisionRecord.to_dict
        out.setdefault("payloads", {})[name] = f"full payload, sha256 verified: {ref}"


def full_text(record: Any, name: str, store: PayloadStore | None = None) -> bytes:
    """The exact full canonical JSON of one field of a decision: its offloaded payload (checked
    against its hash), or the stored text when the field was stored whole. Raises PayloadError."""
    ref_key, hash_key = FIELDS[name]
    ref = record.attributes.get(ref_key)
    if ref is not None:
        return fetch(str(ref), record.attributes.get(hash_key), store)
    from ..encoding import is_cut

    if is_cut(record.attributes.get(D.TRUNCATED), name):
        raise PayloadError(f"the {name} of decision {record.decision_id} was bounded and not offloaded "
                           "(no payload store was configured, or its write failed: see decision.error)")
    text = record.attributes.get({"input": D.INPUT, "output": D.OUTPUT, "explanation": D.EXPLANATION}[name])
    if text is None:
        raise PayloadError(f"decision {record.decision_id} has no {name}")
    return str(text).encode("utf-8", "surrogatepass")
