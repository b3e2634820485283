from __future__ import annotations

import json
from pathlib import Path

import pytest

import decisiontrail
from decisiontrail import record_decision
from decisiontrail.chain import verify
from decisiontrail.cli import main
from decisiontrail.recorder import get_recorder, set_recorder
from decisiontrail.store import iter_decisions


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


def events(path: Path) -> list[dict]:  # type: ignore[type-arg]
    views = {}
    for d in iter_decisions(path):
        views.setdefault(id(d.attributes), d.chain_view())
    return list(views.values())


def rewrite(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def test_an_untouched_store_verifies(chained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checked, problems = verify(events(chained))
    assert checked == 11 and problems == []
    assert main(["verify", "--data", str(chained)]) == 0
    assert "13 decisions in 11 chained events checked, 0 problems" in capsys.readouterr().out


def test_an_edited_output_is_detected(chained: Path) -> None:
    rewrite(chained, lambda lines: [l.replace('{\\"out\\":1}', '{\\"out\\":0}', 1) for l in lines])
    _, problems = verify(events(chained))
    assert [p.problem for p in problems] == ["content changed after it was recorded"]


def test_an_edited_input_is_detected_through_its_hash(chained: Path) -> None:
    rewrite(chained, lambda lines: [l.replace('{\\"i\\":3}', '{\\"i\\":4}', 1) for l in lines])
    _, problems = verify(events(chained))
    assert any(p.problem == "input does not match decision.input.hash" for p in problems)


def test_a_deleted_decision_is_detected(chained: Path) -> None:
    def drop_fourth_event(lines: list[str]) -> list[str]:
        out = []
        for line in lines:
            msg = json.loads(line)
            for rs in msg["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    ss["spans"] = [s for s in ss["spans"]
                                   if not any(a["key"] == "decision.chain.seq" and a["value"]["intValue"] == "4"
                                              for e in s.get("events", []) for a in e["attributes"])]
            out.append(json.dumps(msg))
        return out

    rewrite(chained, drop_fourth_event)
    _, problems = verify(events(chained))
    assert [(p.seq, p.problem) for p in problems] == [(5, "missing decisions at seq 4..4")]
    assert main(["verify", "--data", str(chained)]) == 1


def test_a_replayed_duplicate_is_not_a_problem(chained: Path) -> None:
    rewrite(chained, lambda lines: lines + lines[:1])
    checked, problems = verify(events(chained))
    assert checked == 11 and problems == []
