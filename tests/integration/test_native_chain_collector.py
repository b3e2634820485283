"""The native link hash (native/src/chain.rs) against the real collector: a chain recorded with the
accelerator on, through the collector to its audit files, verifies clean with ``decisiontrail verify``
(with the accelerator on and off), and every stored chain hash is what the Python path computes for
the stored record (and what the native twin computes: none of them fell back)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import decisiontrail_native  # scripts/test.sh always installs it: its absence fails, never skips
import pytest
from integration_support import CollectorProcess, wait_until
from opentelemetry.trace import SpanKind

import decisiontrail
from decisiontrail import record_decision, record_outcome, record_review
from decisiontrail.chain import _LEAVE_HASH, _LEAVE_HASH_AND_INPUT, _link_hash
from decisiontrail.conventions import AUDIT_EVENTS, CHECKPOINT_EVENT, DECISION_EVENT
from decisiontrail.conventions import DecisionAttributes as D
from decisiontrail.encoding import is_cut
from decisiontrail.native import accelerator, use_native
from decisiontrail.recorder import get_recorder, set_recorder
from decisiontrail.signing import keygen, load_verifier
from decisiontrail.store.reader import iter_spans
from decisiontrail.verification import AuditEvent, audit_events, verify_records


@pytest.fixture(autouse=True)
def _native_off_after() -> Iterator[None]:
    yield
    use_native(None)


def record_chain(endpoint: str, key: Path, spool: Path) -> None:
    """Decisions of every shape the link hash sees (escapes, control characters, non-ASCII, a cut
    input, packed rows), an outcome and a review, checkpoints mid-chain and the closing one."""
    cfg = decisiontrail.configure(endpoint=endpoint, service_name="native-chain", set_global=False, native=True,
                                  signing_key=key, checkpoint_every=10, spool_dir=spool, max_chars=2_000)
    assert accelerator() is decisiontrail_native
    tracer = cfg.tracer_provider.get_tracer("native-chain-test")
    try:
        for i in range(30):
            with tracer.start_as_current_span("POST /score", kind=SpanKind.SERVER):
                did = record_decision("loan", {"i": i, "name": "Zoë \"q\" \\ \n\t\x01 \u2028 😀", "x": i / 7,
                                               "big": "y" * (5_000 if i % 10 == 0 else 10)},
                                      {"p": i / 30, "neg": -0.0}, label=["approve", "deny"][i % 2], score=i / 30,
                                      reason_codes=["R1", "é"])
            if i == 3:
                record_outcome(did, "repaid", source="ledger")
            if i == 4:
                record_review(did, reviewer="alice", action="override", label="deny", rationale="checked ✓")
            if i % 8 == 7:
                assert cfg.force_flush()
        get_recorder().record_batch("batch", [[1.0, 2.5], [3.0, -4.0]] * 20, [0, 1] * 20)
    finally:
        cfg.shutdown()
        set_recorder(None)


def stored_events(collector: CollectorProcess) -> list[AuditEvent]:
    return list(audit_events(iter_spans(collector.audit_dir)))


def verify_cli(audit_dir: Path, public_key: Path, native: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DECISIONTRAIL_NATIVE"}
    if native:
        env["DECISIONTRAIL_NATIVE"] = "1"
    return subprocess.run([sys.executable, "-m", "decisiontrail.cli", "verify", "--data", str(audit_dir),
                           "--public-key", str(public_key)], capture_output=True, text=True, timeout=120, env=env)


def test_a_chain_linked_natively_is_stored_and_verifies_as_the_python_path_links_it(
        collector_factory: Callable[..., CollectorProcess], tmp_path: Path) -> None:
    collector = collector_factory(jaeger=None)
    keygen(tmp_path / "k")
    public_key = tmp_path / "k" / "decisiontrail.pub"
    record_chain(collector.otlp_grpc_endpoint, tmp_path / "k" / "decisiontrail.key", tmp_path / "spool")
    verifier = load_verifier(public_key)
    wait_until(lambda: collector.audit_dir.is_dir()
               and (r := verify_records(stored_events(collector), {verifier.key_id: verifier})).ok
               and [c.closed for c in r.chains] == [True], timeout=60, message="the closed chain in the audit files")
    collector.stop()  # the files no longer move

    events = [e for e in stored_events(collector) if e.name in AUDIT_EVENTS]
    names = {e.name for e in events}
    assert DECISION_EVENT in names and CHECKPOINT_EVENT in names and len(names) >= 4, names  # + outcome, review
    assert any(is_cut(e.attributes.get(D.TRUNCATED), "input") for e in events)  # the cut-input branch ran
    use_native(False)
    for e in events:
        a = dict(e.attributes)
        stored = a[D.CHAIN_HASH]
        assert _link_hash(e.name, a, e.time_unix_nano, e.trace_id, e.span_id, None) == stored
        leave = _LEAVE_HASH if is_cut(a.get(D.TRUNCATED), "input") else _LEAVE_HASH_AND_INPUT
        assert decisiontrail_native.chain_hash(e.name, a, e.time_unix_nano, e.trace_id, e.span_id, leave) == stored

    for native in (True, False):
        v = verify_cli(collector.audit_dir, public_key, native)
        assert v.returncode == 0 and "0 problem(s)" in v.stdout, v.stdout + v.stderr
