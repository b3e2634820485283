"""using_subject: every decision in scope carries the subject id and business keys, hashed or
redacted by the recorder's policy; the CLI finds a subject's decisions with one command."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import decisiontrail
from decisiontrail.recorder import set_recorder
from decisiontrail.store.reader import iter_decisions
from decisiontrail.subjects import current_subject, pseudonym_of

SECRET = "test-secret"


@pytest.fixture
def hashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "DECISIONTRAIL_HASH_SECRET",
                "DECISIONTRAIL_HASH_KEYS", "DECISIONTRAIL_REDACT_KEYS"):
        monkeypatch.delenv(var, raising=False)
    cfg = decisiontrail.configure(path=tmp_path / "store", set_global=False, hash_secret=SECRET,
                                  hash_keys=["customer_id"], redact_keys=["ssn"])
    yield cfg, tmp_path / "store"
    cfg.shutdown()
    set_recorder(None)


def test_every_decision_in_scope_carries_the_subject_and_keys(hashed) -> None:  # type: ignore[no-untyped-def]
    cfg, path = hashed
    with decisiontrail.using_subject("A-1029", loan_id="L-77", customer_id="C-5", ssn="123-45-6789"):
        single = decisiontrail.record_decision("loan", {"income": 1}, "approve", label="approve", score=0.9)
        with decisiontrail.using_subject(order_id=9):  # inner scope: same subject, one more key
            inner = decisiontrail.record_decision("loan", {"income": 2}, "deny")
        from decisiontrail.recorder import get_recorder
        first = get_recorder().record_batch("loan", [[1], [2], [3]], ["a", "b", "c"])
    outside = decisiontrail.record_decision("loan", {"income": 3}, "deny")
    assert cfg.force_flush()
    by_id = {d.decision_id: d for d in iter_decisions(path)}
    pseudo = pseudonym_of("A-1029", SECRET)
    for did in (single, inner, first):
        a = by_id[did].attributes
        assert a["enduser.pseudo.id"] == pseudo and "enduser.id" not in a
        assert a["decision.key.loan_id"] == "L-77"
        assert a["decision.key.customer_id"] == pseudonym_of("C-5", SECRET)  # a hash key of the policy
        assert a["decision.key.ssn"] == "[REDACTED]"  # a redact key of the policy
        assert {"key.customer_id", "key.ssn"} <= set(a["decision.redacted"])
        assert "123-45-6789" not in json.dumps(a) and "C-5" not in json.dumps(a)
    assert by_id[inner].attributes["decision.key.order_id"] == "9"
    assert "decision.key.order_id" not in by_id[single].attributes
    assert len([d for d in by_id.values() if d.attributes.get("enduser.pseudo.id") == pseudo]) == 5  # 3 batch rows
    assert not any(k.startswith(("enduser.", "decision.key.")) for k in by_id[outside].attributes)


def test_without_a_secret_the_subject_is_recorded_in_clear(store) -> None:  # type: ignore[no-untyped-def]
    with decisiontrail.using_subject(1029):
        did = decisiontrail.record_decision("loan", {"x": 1}, 0)
    (d,) = [d for d in store.decisions() if d.decision_id == did]
    assert d.attributes["enduser.id"] == "1029" and "enduser.pseudo.id" not in d.attributes


def test_scopes_belong_to_their_thread() -> None:
    seen: list[object] = []
    with decisiontrail.using_subject("A-1"):
        t = threading.Thread(target=lambda: seen.append(current_subject()))
        t.start()
        t.join()
        assert current_subject() is not None and current_subject().subject_id == "A-1"  # type: ignore[union-attr]
    assert seen == [None] and current_subject() is None


def _cli(*args: str, secret: str | None, **extra: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("DECISIONTRAIL_")} | extra
    if secret is not None:
        env["DECISIONTRAIL_HASH_SECRET"] = secret
    return subprocess.run([sys.executable, "-m", "decisiontrail.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_pseudonym_and_query_by_subject(hashed) -> None:  # type: ignore[no-untyped-def]
    cfg, path = hashed
    with decisiontrail.using_subject("A-1029"):
        mine = {decisiontrail.record_decision("loan", {"i": i}, "deny") for i in range(2)}
    with decisiontrail.using_subject("A-2000"):
        decisiontrail.record_decision("loan", {"i": 9}, "deny")
    assert cfg.force_flush()

    p = _cli("pseudonym", "A-1029", secret=SECRET)
    assert p.returncode == 0 and p.stdout.strip() == pseudonym_of("A-1029", SECRET)
    stored = {d.attributes["enduser.pseudo.id"] for d in iter_decisions(path) if d.decision_id in mine}
    assert stored == {p.stdout.strip()}

    q = _cli("query", "--data", str(path), "--subject", "A-1029", "--format", "jsonl", secret=SECRET)
    assert q.returncode == 0 and {json.loads(line)["decision_id"] for line in q.stdout.splitlines()} == mine
    assert _cli("query", "--data", str(path), "--subject", "A-9999", secret=SECRET).returncode == 1

    missing = _cli("pseudonym", "A-1029", secret=None)
    assert missing.returncode == 2 and "DECISIONTRAIL_HASH_SECRET" in missing.stderr and "Traceback" not in missing.stderr


def test_subject_and_keys_are_bounded_like_every_attribute(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DECISIONTRAIL_HASH_SECRET", raising=False)
    cfg = decisiontrail.configure(path=tmp_path / "s", set_global=False, max_chars=300)
    try:
        with decisiontrail.using_subject("S" * 5000, note="n" * 5000, loan_id="L-1"):
            did = decisiontrail.record_decision("loan", {"x": 1}, 0)
        assert cfg.force_flush()
        (d,) = [d for d in iter_decisions(tmp_path / "s") if d.decision_id == did]
        a = d.attributes
        assert len(a["enduser.id"]) <= 300 and len(a["decision.key.note"]) <= 300
        assert a["decision.key.loan_id"] == "L-1"
        assert {"enduser.id", "decision.key.note"} <= set(a["decision.truncated"])
    finally:
        cfg.shutdown()
        set_recorder(None)


def test_query_by_business_key_hashes_it_as_the_policy_did(hashed) -> None:  # type: ignore[no-untyped-def]
    cfg, path = hashed
    with decisiontrail.using_subject("A-1", loan_id="L-77", customer_id="C-5"):
        mine = decisiontrail.record_decision("loan", {"i": 1}, "deny")
    with decisiontrail.using_subject("A-2", loan_id="L-78", customer_id="C-6"):
        decisiontrail.record_decision("loan", {"i": 2}, "deny")
    assert cfg.force_flush()
    env = {"DECISIONTRAIL_HASH_KEYS": "customer_id", "DECISIONTRAIL_REDACT_KEYS": "ssn"}

    def ids(*args: str, secret: str | None = SECRET) -> list[str]:
        p = _cli("query", "--data", str(path), *args, "--format", "jsonl", secret=secret, **env)
        return [json.loads(line)["decision_id"] for line in p.stdout.splitlines()]

    assert ids("--key", "loan_id=L-77") == [mine]  # in clear
    assert ids("--key", "customer_id=C-5") == [mine]  # a hash key: hashed for you
    assert ids("--key", "customer_id=C-5", "--key", "loan_id=L-78") == []
    redacted = _cli("query", "--data", str(path), "--key", "ssn=1", secret=SECRET, **env)
    assert redacted.returncode == 2 and "[REDACTED]" in redacted.stderr and "Traceback" not in redacted.stderr
    clear = _cli("query", "--data", str(path), "--subject", "A-1", secret=None)
    assert clear.returncode == 1 and "DECISIONTRAIL_HASH_SECRET" in clear.stderr  # says why nothing matched
