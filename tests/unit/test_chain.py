"""The hash chain and its checkpoints as the recording side makes them: links over everything that
matters, checkpoints every N decisions, on a timer and at shutdown, one chain per forked worker, and
a process killed with SIGKILL seen as open, not tampered."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

import decisiontrail
from decisiontrail import record_decision
from decisiontrail.chain import verify
from decisiontrail.checkpoints import Checkpoint, SignedNote
from decisiontrail.cli import main
from decisiontrail.conventions import CHECKPOINT_EVENT, CHECKPOINT_SPAN
from decisiontrail.conventions import CheckpointAttributes as C
from decisiontrail.exporters.file import FileSpanExporter
from decisiontrail.recorder import get_recorder, set_recorder
from decisiontrail.signing import keygen
from decisiontrail.store import iter_decisions, iter_spans
from decisiontrail.verification import audit_events, verify_records


@pytest.fixture
def chained(tmp_path: Path) -> Path:
    cfg = decisiontrail.configure(path=tmp_path, set_global=False)
    try:
        for i in range(10):
            record_decision("m", {"i": i}, {"out": i % 2}, label=str(i % 2))
        get_recorder().record_batch("m", [[1, 2], [3, 4], [5, 6]], [0, 1, 0])
        cfg.force_flush()
    finally:
        cfg.shutdown()
        set_recorder(None)
    return tmp_path / "decisions.jsonl"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("keys")
    keygen(out)
    return out


def events(path: Path) -> list[dict]:  # type: ignore[type-arg]
    views = {}
    for d in iter_decisions(path):
        views.setdefault(id(d.attributes), d.chain_view())
    return list(views.values())


def rewrite(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def checkpoints(data: Path) -> list[Checkpoint]:
    return sorted((Checkpoint.parse(SignedNote.parse(e.attributes[C.NOTE]).text)
                   for e in audit_events(iter_spans(data)) if e.name == CHECKPOINT_EVENT), key=lambda c: c.seq)


def verify_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["verify", *args])
    return rc, capsys.readouterr().out


def test_an_untouched_unsigned_store_verifies(chained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checked, problems = verify(events(chained))
    assert checked == 11 and problems == []
    rc, out = verify_cli("--data", str(chained), capsys=capsys)
    assert rc == 0 and "13 decisions, seq 1..11, no checkpoint, unsigned, open since seq 0" in out
    assert "not proven: no chain has a checkpoint" in out


def test_an_edited_output_is_detected(chained: Path) -> None:
    rewrite(chained, lambda lines: [l.replace('{\\"out\\":1}', '{\\"out\\":0}', 1) for l in lines])
    _, problems = verify(events(chained))
    assert [p.what.split(":")[0] for p in problems] == ["changed after it was recorded"]


def test_an_edited_input_is_detected_through_its_hash(chained: Path) -> None:
    rewrite(chained, lambda lines: [l.replace('{\\"i\\":3}', '{\\"i\\":4}', 1) for l in lines])
    _, problems = verify(events(chained))
    assert any(p.what == "the input does not match decision.input.hash" for p in problems)


def test_a_decision_on_another_span_breaks_its_link(chained: Path) -> None:
    views = events(chained)
    views[3] = views[3] | {"span_id": views[4]["span_id"] if views[4]["span_id"] != views[3]["span_id"] else "0" * 16}
    _, problems = verify(views)
    assert [(p.seq, "moved to another request" in p.what) for p in problems] == [(4, True)]


def test_a_replayed_duplicate_is_not_a_problem(chained: Path) -> None:
    rewrite(chained, lambda lines: lines + lines[:1])
    checked, problems = verify(events(chained))
    assert checked == 11 and problems == []


def test_checkpoints_every_n_decisions_and_a_closed_one_at_shutdown(tmp_path: Path, key: Path) -> None:
    cfg = decisiontrail.configure(path=tmp_path, set_global=False, signing_key=key / "decisiontrail.key",
                                  checkpoint_every=5, checkpoint_seconds=3600)
    try:
        for i in range(12):
            record_decision("m", {"i": i}, i)
            if i % 5 == 4:
                assert cfg.force_flush()
        assert cfg.force_flush()
        assert [(c.seq, c.decisions, c.closed) for c in checkpoints(tmp_path)] == [(5, 5, False), (11, 10, False)]
    finally:
        cfg.shutdown()
        set_recorder(None)
    cps = checkpoints(tmp_path)
    assert [(c.seq, c.decisions, c.closed) for c in cps] == [(5, 5, False), (11, 10, False), (14, 12, True)]
    assert cps[1].prev == cps[0].digest() and cps[2].prev == cps[1].digest()
    spans = [s for s in iter_spans(tmp_path) if s.name == CHECKPOINT_SPAN]
    assert len(spans) == 3 and all(s.attributes["decision.audit.records"] == 1 for s in spans)
    assert len(list(iter_decisions(tmp_path))) == 12


def test_an_idle_process_gets_its_checkpoint_from_the_timer(tmp_path: Path, key: Path) -> None:
    cfg = decisiontrail.configure(path=tmp_path, set_global=False, signing_key=key / "decisiontrail.key",
                                  checkpoint_every=1000, checkpoint_seconds=0.3,
                                  processor_options={"schedule_delay_millis": 50})
    try:
        record_decision("m", {"i": 0}, 0)
        deadline = time.monotonic() + 30
        while not checkpoints(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [(c.seq, c.closed) for c in checkpoints(tmp_path)] == [(1, False)]
        time.sleep(0.8)  # nothing recorded since: no more checkpoints
        assert len(checkpoints(tmp_path)) == 1
    finally:
        cfg.shutdown()
        set_recorder(None)
    assert [(c.seq, c.closed) for c in checkpoints(tmp_path)] == [(1, False), (2, True)]


def _record_in_worker(n: int) -> None:
    for i in range(n):
        record_decision("m", {"worker": os.getpid(), "i": i}, i)


def test_forked_workers_each_close_a_chain_of_their_own(tmp_path: Path, key: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    cfg = decisiontrail.configure(path=tmp_path / "data", set_global=False, signing_key=key / "decisiontrail.key",
                                  anchors=tmp_path / "anchors", checkpoint_every=50)
    try:
        ctx = multiprocessing.get_context("fork")
        workers = [ctx.Process(target=_record_in_worker, args=(120,)) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
            assert w.exitcode == 0
        _record_in_worker(30)
    finally:
        cfg.shutdown()
        set_recorder(None)
    rc, out = verify_cli("--data", str(tmp_path / "data"), "--public-key", str(key / "decisiontrail.pub"),
                         "--anchors", str(tmp_path / "anchors"), capsys=capsys)
    assert rc == 0, out
    chains = [line for line in out.splitlines() if line.startswith("chain ")]
    assert sorted(int(line.split(": ")[1].split()[0]) for line in chains) == [30, 120, 120]
    assert all(line.endswith(", closed") for line in chains), out


_KILLED = """
import sys, decisiontrail
from decisiontrail import record_decision
cfg = decisiontrail.configure(path=sys.argv[1], signing_key=sys.argv[2], anchors=sys.argv[3],
                              checkpoint_every=10, set_global=False)
for i in range(35):
    record_decision("m", {"i": i}, i)
    if i % 10 == 9:
        cfg.force_flush()
cfg.force_flush()
for i in range(3):  # 8 decisions since the last checkpoint: fewer than 10, none due
    record_decision("m", {"late": i}, i)
cfg.force_flush()
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_process_killed_with_sigkill_verifies_as_open(tmp_path: Path, key: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    p = subprocess.Popen([sys.executable, "-c", _KILLED, str(tmp_path / "data"), str(key / "decisiontrail.key"),
                          str(tmp_path / "anchors")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    rc, out = verify_cli("--data", str(tmp_path / "data"), "--public-key", str(key / "decisiontrail.pub"),
                         "--anchors", str(tmp_path / "anchors"), capsys=capsys)
    assert rc == 0, out
    last_cp = checkpoints(tmp_path / "data")[-1]
    assert not last_cp.closed
    assert f"38 decisions, seq 1..{last_cp.seq + 1 + 8}" in out and f"open since seq {last_cp.seq + 1}" in out, out
    assert "not proven: 1 chain(s) open" in out


def test_the_checkpoint_note_round_trips(key: Path) -> None:
    from decisiontrail.signing import load_signer, load_verifier

    signer = load_signer(key / "decisiontrail.key")
    cp = Checkpoint("c", 7, "ab" * 32, 9, "cd" * 32, 123, True)
    note = SignedNote.create(cp.text(), [signer]).render()
    parsed = SignedNote.parse(note)
    assert Checkpoint.parse(parsed.text) == cp
    verifier = load_verifier(key / "decisiontrail.pub")
    assert parsed.check({verifier.key_id: verifier}) == (verifier.key_id.hex(), None)
    assert json.dumps(note)  # an attribute value: plain text


class _Outage(FileSpanExporter):
    """The embedded store, unreachable until ``up`` is set."""

    up = False

    def export(self, spans):  # type: ignore[no-untyped-def]
        return super().export(spans) if self.up else SpanExportResult.FAILURE


def test_checkpoints_take_the_spool_through_an_outage_and_are_anchored_once_delivered(
        tmp_path: Path, key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exporter = _Outage(tmp_path / "data")
    cfg = decisiontrail.configure(exporter=exporter, set_global=False, spool_dir=tmp_path / "spool",
                                  signing_key=key / "decisiontrail.key", anchors=tmp_path / "anchors",
                                  checkpoint_every=5, processor_options={"replay_min_backoff_millis": 50,
                                                                         "replay_max_backoff_millis": 100})
    try:
        for i in range(12):
            record_decision("m", {"i": i}, i)
        assert cfg.force_flush()
        assert cfg.spool is not None and cfg.spool.segments()  # the checkpoint waits in the spool too
        assert not list((tmp_path / "anchors").rglob("*.note"))  # nothing acknowledged, nothing anchored
        exporter.up = True
        assert cfg.drain(30_000)
    finally:
        cfg.shutdown()
        set_recorder(None)
    rc, out = verify_cli("--data", str(tmp_path / "data"), "--public-key", str(key / "decisiontrail.pub"),
                         "--anchors", str(tmp_path / "anchors"), capsys=capsys)
    assert rc == 0 and "12 decisions" in out and ", closed" in out, out
    assert len(list((tmp_path / "anchors").rglob("*.note"))) == len(checkpoints(tmp_path / "data")) == 2
