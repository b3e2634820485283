"""Full payloads by reference: written before the decision leaves, read back byte for byte through
``show``, checked by ``verify``; a failed write is counted, logged, raised under fail-closed, and
never costs the decision."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import decisiontrail
from decisiontrail import RecordingError, record_decision, stats
from decisiontrail.config import Configuration
from decisiontrail.conventions import DecisionAttributes as D
from decisiontrail.encoding import canonical_json, sha256_hex
from decisiontrail.recorder import RecorderSettings, get_recorder, set_recorder
from decisiontrail.store.payloads import PayloadError, PayloadStore, fetch
from decisiontrail.store.reader import DecisionRecord, iter_decisions

APPLICATION = {"essay": "Sehr geehrte Damen und Herren, é🙂 " * 8000, "loan_amount": 15000.0, "zip": "94110"}


def first_json(out: bytes) -> Any:
    """The decision ``show`` prints first (a timeline and the span tree follow it)."""
    return json.JSONDecoder().raw_decode(out.decode())[0]


def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "decisiontrail.cli", *args], capture_output=True, timeout=120)


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "DECISIONTRAIL_PAYLOAD_STORE",
                "DECISIONTRAIL_FAIL_CLOSED"):
        monkeypatch.delenv(var, raising=False)
    made: list[Configuration] = []

    def make(**kwargs: Any) -> Configuration:
        stats.reset()
        kwargs.setdefault("payload_store", tmp_path / "payloads")
        cfg = decisiontrail.configure(path=tmp_path / "store", set_global=False, **kwargs)
        made.append(cfg)
        return cfg

    yield make
    for cfg in made:
        cfg.shutdown()
    set_recorder(None)


def stored(cfg: Configuration) -> dict[str, DecisionRecord]:
    assert cfg.drain(10_000)
    return {d.decision_id: d for d in iter_decisions(cfg.destination)}


def test_the_full_input_comes_back_through_show_byte_for_byte(configured: Any, tmp_path: Path) -> None:
    cfg = configured()
    did = record_decision("loan", APPLICATION, {"approved": False})
    full = canonical_json(APPLICATION).encode()
    objects = list((tmp_path / "payloads").rglob("*.json"))
    assert [o.read_bytes() for o in objects] == [full]  # written before the decision is exported
    d = stored(cfg)[did]
    a = d.attributes
    assert a[D.INPUT_HASH] == sha256_hex(canonical_json(APPLICATION))
    assert a[D.INPUT_REF] == objects[0].resolve().as_uri() and a[D.INPUT_HASH][7:] in a[D.INPUT_REF]
    assert d.input["loan_amount"] == 15000.0 and d.input["essay"]["$truncated"] == "str"
    assert D.OUTPUT_REF not in a  # the output fit

    p = cli("show", did, "--data", cfg.destination, "--payload", "input")
    assert p.returncode == 0, p.stderr
    assert p.stdout == full
    p = cli("show", did, "--data", cfg.destination)
    shown = first_json(p.stdout)
    assert shown["input"] == APPLICATION and "sha256 verified" in shown["payloads"]["input"]
    small = record_decision("loan", {"essay": "short"}, 1)
    stored(cfg)
    p = cli("show", small, "--data", cfg.destination, "--payload", "input")
    assert p.returncode == 0 and p.stdout == b'{"essay":"short"}'


def test_verify_reports_a_missing_or_altered_payload(configured: Any, tmp_path: Path) -> None:
    cfg = configured()
    did = record_decision("loan", APPLICATION, 1)
    record_decision("loan", {"x": 1}, 1)
    stored(cfg)
    assert cli("verify", "--data", cfg.destination).returncode == 0
    (obj,) = (tmp_path / "payloads").rglob("*.json")
    obj.write_bytes(obj.read_bytes().replace(b"15000.0", b"1.0"))
    p = cli("verify", "--data", cfg.destination)
    assert p.returncode == 1 and b"payload altered" in p.stdout and did.encode() in p.stdout
    assert b"1 payloads missing or altered" in p.stdout
    p = cli("show", did, "--data", cfg.destination, "--payload", "input")
    assert p.returncode == 1 and b"payload altered" in p.stderr and p.stdout == b""
    obj.unlink()
    p = cli("verify", "--data", cfg.destination)
    assert p.returncode == 1 and b"payload missing" in p.stdout


def test_a_moved_store_is_read_with_payload_store(configured: Any, tmp_path: Path) -> None:
    cfg = configured()
    did = record_decision("loan", APPLICATION, 1)
    stored(cfg)
    (tmp_path / "payloads").rename(tmp_path / "moved")
    assert cli("show", did, "--data", cfg.destination, "--payload", "input").returncode == 1
    p = cli("show", did, "--data", cfg.destination, "--payload", "input", "--payload-store", str(tmp_path / "moved"))
    assert p.returncode == 0 and p.stdout == canonical_json(APPLICATION).encode()


def test_a_failed_payload_write_keeps_the_decision_and_says_so(configured: Any, tmp_path: Path, caplog: Any) -> None:
    (tmp_path / "payloads").write_text("a file where the payload directory should be")
    cfg = configured()
    with caplog.at_level(logging.ERROR, "decisiontrail"):
        did = record_decision("loan", APPLICATION, 1)
    d = stored(cfg)[did]
    assert d.input["loan_amount"] == 15000.0 and D.INPUT_REF not in d.attributes
    assert "payload store" in d.attributes[D.ERROR] and D.INPUT_HASH in d.attributes
    assert stats.snapshot()["payload_errors"] == 1 and "writing a payload" in caplog.text
    p = cli("show", did, "--data", cfg.destination, "--payload", "input")
    assert p.returncode == 1 and b"not offloaded" in p.stderr


def test_under_fail_closed_a_failed_payload_write_raises_after_recording(configured: Any, tmp_path: Path) -> None:
    (tmp_path / "payloads").write_text("not a directory")
    cfg = configured(fail_closed=True)
    with pytest.raises(RecordingError, match="payload store"):
        record_decision("loan", APPLICATION, 1)
    frame = pd.DataFrame({"amount": [1.0, 2.0], "note": ["n" * 400_000, "ok"]})
    with pytest.raises(RecordingError, match="payload store"):
        get_recorder().record_batch("loan", frame, np.array([0, 1]))
    got = stored(cfg)
    assert len(got) == 3 and all("payload store" in d.attributes[D.ERROR] for d in got.values()
                                  if D.BATCH_COUNT not in d.attributes or d.input["amount"] == 1.0)
    assert stats.snapshot()["payload_errors"] == 2


def test_a_batch_row_is_offloaded_and_shown_whole(configured: Any) -> None:
    cfg = configured()
    frame = pd.DataFrame({"amount": [100.0, 15000.0], "note": ["a", "n" * 400_000]})
    first = get_recorder().record_batch("loan", frame, np.array([0, 1]))
    rows = stored(cfg)
    (big,) = [d for d in rows.values() if d.input["amount"] == 15000.0]
    assert D.INPUT_REF in big.attributes and first in rows
    p = cli("show", big.decision_id, "--data", cfg.destination)
    shown = first_json(p.stdout)
    assert shown["input"] == {"amount": 15000.0, "note": "n" * 400_000}


def test_the_store_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DECISIONTRAIL_PAYLOAD_STORE", str(tmp_path / "env-payloads"))
    store = RecorderSettings.from_env().payload_store
    assert store is not None and store.url == (tmp_path / "env-payloads").resolve().as_uri()
    with pytest.raises(decisiontrail.ConfigurationError, match="payload_store"):
        decisiontrail.configure(path=tmp_path / "s", payload_store=123, set_global=False)  # type: ignore[arg-type]


def test_an_fsspec_url_store_round_trips() -> None:
    store = PayloadStore("memory://decisiontrail-test/payloads")
    text = canonical_json(APPLICATION)
    ref = store.put(text)
    assert ref.startswith("memory://decisiontrail-test/payloads/sha256/")
    assert store.put(text) == ref  # content-addressed: written once
    assert fetch(ref, sha256_hex(text)) == text.encode()
    with pytest.raises(PayloadError, match="altered"):
        fetch(ref, sha256_hex("something else"))
    with pytest.raises(PayloadError, match="missing"):
        fetch(ref.replace("/sha256/", "/nothing/"), sha256_hex(text))


def test_redaction_applies_before_bounding_and_offload(configured: Any, tmp_path: Path) -> None:
    cfg = configured(redact_keys=["ssn"])
    did = record_decision("loan", {**APPLICATION, "ssn": "123-45-6789", "scan": np.zeros((300, 300))}, 1)
    d = stored(cfg)[did]
    assert d.input["ssn"] == "[REDACTED]" and d.input["loan_amount"] == 15000.0
    assert d.attributes[D.REDACTED] == ["input.ssn"] and set(d.attributes[D.TRUNCATED]) == {"input.essay", "input.scan"}
    (obj,) = (tmp_path / "payloads").rglob("*.json")
    full = json.loads(obj.read_bytes())
    assert full["ssn"] == "[REDACTED]" and b"123-45-6789" not in obj.read_bytes()
    assert len(full["scan"]) == 300 and full["essay"] == APPLICATION["essay"]
