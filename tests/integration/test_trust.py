"""Tamper evidence through the real collector: signed chains sent over OTLP, stored by the collector's
file exporter, tampered with in every way tests/tampering.py knows, and caught by ``verify``; forked
workers and a process killed with SIGKILL verify as closed and open chains, not as tampering."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from integration_support import CollectorProcess, wait_until
from tampering import CASES, AuditFiles, write_chain

import decisiontrail
from decisiontrail.anchors import AnchorStore
from decisiontrail.signing import keygen, load_signer, load_verifier
from decisiontrail.store.reader import iter_spans
from decisiontrail.verification import Report, audit_events, verify_records


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "decisiontrail.cli", *args], capture_output=True, text=True,
                          timeout=120)


def report(audit_dir: Path, keys: list[Path], anchors: Path) -> Report:
    verifiers = {v.key_id: v for v in (load_verifier(k) for k in keys)}
    notes = [(str(p), t) for p, t in AnchorStore(anchors).notes()]
    return verify_records(audit_events(iter_spans(audit_dir)), verifiers, notes)


def send_chain(endpoint: str, key: Path, anchors: Path, service: str, n: int = 20) -> None:
    cfg = decisiontrail.configure(endpoint=endpoint, service_name=service, set_global=False, signing_key=key,
                                  anchors=anchors, checkpoint_every=8)
    write_chain(cfg, n)


def test_every_tampering_of_the_collectors_files_is_caught(collector_factory: Callable[..., CollectorProcess],
                                                          tmp_path: Path) -> None:
    collector = collector_factory(jaeger=None)
    keys = []
    for k in ("k1", "k2"):
        keygen(tmp_path / k)
        keys.append(tmp_path / k / "decisiontrail.pub")
    keygen(tmp_path / "attacker")
    anchors = tmp_path / "anchors"
    send_chain(collector.otlp_grpc_endpoint, tmp_path / "k1" / "decisiontrail.key", anchors, "svc-a")
    send_chain(collector.otlp_grpc_endpoint, tmp_path / "k2" / "decisiontrail.key", anchors, "svc-b")
    wait_until(lambda: collector.audit_dir.is_dir() and (r := report(collector.audit_dir, keys, anchors)).ok
               and [c.closed for c in r.chains] == [True, True], timeout=60,
               message="both closed chains in the collector's audit files")
    collector.stop()  # the files no longer move

    untouched = cli("verify", "--data", str(collector.audit_dir), "--public-key", str(keys[0]),
                    "--public-key", str(keys[1]), "--anchors", str(anchors))
    assert untouched.returncode == 0, untouched.stdout
    assert len(re.findall(r"\(svc-[ab]\): 23 decisions, 1 outcome/review records, seq 1\.\.\d+, .*, key [0-9a-f]{8}, "
                          r"closed$",
                          untouched.stdout, flags=re.M)) == 2, untouched.stdout

    attacker = load_signer(tmp_path / "attacker" / "decisiontrail.key")
    missed = []
    for name, (tamper, expected) in sorted(CASES.items()):
        work = tmp_path / re.sub(r"\W+", "-", name)
        shutil.copytree(collector.audit_dir, work / "audit")
        shutil.copytree(anchors, work / "anchors")
        files = AuditFiles(work / "audit")
        tamper(files, attacker)
        files.save()
        r = report(work / "audit", keys, work / "anchors")
        if r.ok or not any(re.search(expected, str(p)) for p in r.problems):
            missed.append(f"{name}: {[str(p) for p in r.problems]}")
    assert missed == []


_WORKERS_THEN_KILLED = """
import multiprocessing, sys, decisiontrail
from decisiontrail import record_decision, record_review
cfg = decisiontrail.configure(endpoint=sys.argv[1], protocol="http/protobuf", service_name="svc-forked",
                              signing_key=sys.argv[2], anchors=sys.argv[3], checkpoint_every=10,
                              set_global=False)

def work():
    for i in range(50):
        record_decision("m", {"worker": i}, i)

workers = [multiprocessing.get_context("fork").Process(target=work) for _ in range(2)]
for w in workers:
    w.start()
for w in workers:
    w.join(60)
    assert w.exitcode == 0
for i in range(35):
    record_decision("m", {"i": i}, i)
    if i % 10 == 9:
        cfg.force_flush()
cfg.force_flush()
print("ready", flush=True)
sys.stdin.read()
"""


def test_forked_workers_and_a_killed_process_verify_as_closed_and_open(
        collector_factory: Callable[..., CollectorProcess], tmp_path: Path) -> None:
    collector = collector_factory(jaeger=None)
    keygen(tmp_path / "k")
    key, pub, anchors = tmp_path / "k" / "decisiontrail.key", tmp_path / "k" / "decisiontrail.pub", tmp_path / "anchors"
    p = subprocess.Popen([sys.executable, "-c", _WORKERS_THEN_KILLED, collector.otlp_http_endpoint, str(key),
                          str(anchors)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    r = wait_until(lambda: collector.audit_dir.is_dir() and (r := report(collector.audit_dir, [pub], anchors))
                   and r.decisions == 135 and r, timeout=60, message="every flushed decision in the audit files")
    assert r.ok, [str(x) for x in r.problems]
    states = sorted((c.decisions, c.closed) for c in r.chains)
    assert states == [(35, False), (50, True), (50, True)]
    out = cli("verify", "--data", str(collector.audit_dir), "--public-key", str(pub), "--anchors", str(anchors))
    assert out.returncode == 0, out.stdout
    assert re.search(r"\(svc-forked\): 35 decisions, seq 1\.\.\d+, .* open since seq \d+$", out.stdout, flags=re.M)
    assert "not proven: 1 chain(s) open" in out.stdout
