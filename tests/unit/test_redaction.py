from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import decisiontrail
from decisiontrail import record_decision
from decisiontrail.conventions import DecisionAttributes as D
from decisiontrail.recorder import get_recorder, set_recorder
from decisiontrail.redaction import REDACTED, RedactionPolicy
from decisiontrail.store import iter_decisions


@pytest.fixture
def redacting(tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = decisiontrail.configure(path=tmp_path, set_global=False, redact_keys=["SSN", "email"],
                                  hash_keys=["customer_id"], hash_secret="s3cret")
    yield cfg, tmp_path
    cfg.shutdown()
    set_recorder(None)


def test_private_fields_never_reach_the_file(redacting) -> None:  # type: ignore[no-untyped-def]
    cfg, path = redacting
    record_decision("loan", {"customer_id": "C-991", "applicant": {"ssn": "123-45-6789", "Email": "a@b.c"},
                             "rows": [{"email": "x@y.z"}], "income": 1}, {"ok": True})
    cfg.force_flush()
    text = "".join(p.read_text() for p in path.iterdir())
    for secret in ("123-45-6789", "a@b.c", "x@y.z", "C-991"):
        assert secret not in text
    (d,) = iter_decisions(path)
    assert d.input["applicant"] == {"ssn": REDACTED, "Email": REDACTED}
    assert d.input["customer_id"].startswith("hmac-sha256:") and d.input["income"] == 1
    assert sorted(d.attributes[D.REDACTED]) == [
        "input.applicant.Email", "input.applicant.ssn", "input.customer_id", "input.rows[0].email"]


def test_keyed_hashes_join_within_a_secret_and_differ_across_secrets() -> None:
    a = RedactionPolicy.create(hash_keys=["id"], hash_secret="k1")
    b = RedactionPolicy.create(hash_keys=["id"], hash_secret="k2")
    assert a.pseudonym("C-1") == a.pseudonym("C-1") != a.pseudonym("C-2")
    assert a.pseudonym("C-1") != b.pseudonym("C-1")


def test_policy_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONTRAIL_REDACT_KEYS", "ssn, email")
    monkeypatch.setenv("DECISIONTRAIL_HASH_KEYS", "customer_id")
    monkeypatch.setenv("DECISIONTRAIL_HASH_SECRET", "env-secret")
    p = RedactionPolicy.create()
    assert p.redact_keys == {"ssn", "email"} and p.hash_keys == {"customer_id"} and p.hash_secret == b"env-secret"


def test_hash_keys_without_secret_warn_and_use_a_random_one(caplog: pytest.LogCaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DECISIONTRAIL_HASH_SECRET", raising=False)
    p = RedactionPolicy.create(hash_keys=["id"])
    assert len(p.hash_secret) == 32 and "random per-process secret" in caplog.text


def test_dataframe_columns_in_batches_are_redacted(redacting) -> None:  # type: ignore[no-untyped-def]
    cfg, path = redacting
    df = pd.DataFrame({"ssn": ["111-11-1111", "222-22-2222"], "customer_id": ["C1", "C2"], "x": [1.0, 2.0]})
    get_recorder().record_batch("m", df, [0, 1])
    cfg.force_flush()
    text = "".join(p.read_text() for p in path.iterdir())
    assert "111-11-1111" not in text and '"C1"' not in text
    rows = list(iter_decisions(path))
    assert rows[1].input["ssn"] == REDACTED and rows[1].input["x"] == 2.0
    assert rows[0].input["customer_id"] != rows[1].input["customer_id"]
