"""The read side of outcomes and reviews through the real commands: query, show, verify, report, on
the audit files and on the compacted warehouse (records in Parquet and in the files' tail)."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import decisiontrail
from decisiontrail import record_decision, record_outcome, record_review
from decisiontrail.cli import main
from decisiontrail.recorder import set_recorder


@dataclass
class Recorded:
    path: Path
    denied: str      # overridden to approve, then repaid
    approved: str    # confirmed, defaulted
    untouched: str
    review: str      # the override's record id


@pytest.fixture(params=["files", "warehouse"])
def recorded(tmp_path: Path, request: pytest.FixtureRequest) -> Recorded:
    cfg = decisiontrail.configure(path=tmp_path / "store", set_global=False)
    try:
        denied = record_decision("loan", {"income": 21000}, {"decision": "deny"}, version="2", label="deny")
        approved = record_decision("loan", {"income": 98000}, {"decision": "approve"}, version="2", label="approve")
        untouched = record_decision("loan", {"income": 50000}, {"decision": "deny"}, version="2", label="deny")
        review = record_review(denied, reviewer="alice", action="override", label="approve",
                               rationale="income verified by phone")
        record_review(approved, reviewer="bob", action="confirm")
        record_outcome(denied, "repaid", source="core-banking")
        record_outcome(approved, "defaulted", observed_at="2027-06-01T00:00:00Z")
        cfg.force_flush()
        if request.param == "warehouse":  # what came so far in Parquet, the rest in the files' tail
            assert main(["compact", "--data", str(tmp_path / "store")]) == 0
        record_review("not-in-this-store", reviewer="carol", action="annotate", rationale="from the old system")
        cfg.force_flush()
    finally:
        cfg.shutdown()
        set_recorder(None)
    return Recorded(tmp_path / "store", denied, approved, untouched, review)


def query(r: Recorded, capsys: pytest.CaptureFixture[str], *args: str) -> list[dict]:  # type: ignore[type-arg]
    code = main(["query", "--data", str(r.path), "--format", "jsonl", *args])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == (0 if rows else 1)
    return rows


def test_query_adds_effective_label_outcome_and_reviews(recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    rows = {row["decision_id"]: row for row in query(recorded, capsys)}
    assert set(rows) == {recorded.denied, recorded.approved, recorded.untouched}  # records are not decisions
    denied = rows[recorded.denied]
    assert (denied["label"], denied["effective_label"], denied["outcome"]) == ("deny", "approve", "repaid")
    [review] = denied["reviews"]
    assert review["record_id"] == recorded.review
    assert (review["reviewer"], review["action"], review["rationale"]) == ("alice", "override", "income verified by phone")
    approved = rows[recorded.approved]
    assert (approved["effective_label"], approved["outcome"]) == ("approve", "defaulted")
    untouched = rows[recorded.untouched]
    assert (untouched["effective_label"], untouched["outcome"], untouched["reviews"]) == ("deny", None, [])


def test_lifecycle_filters(recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    def ids(*args: str) -> set[str]:
        return {row["decision_id"] for row in query(recorded, capsys, *args)}

    assert ids("--effective-label", "approve") == {recorded.denied, recorded.approved}
    assert ids("--label", "approve") == {recorded.approved}
    assert ids("--reviewed") == {recorded.denied, recorded.approved}
    assert ids("--no-reviewed") == {recorded.untouched}
    assert ids("--has-outcome", "--effective-label", "approve", "--label", "deny") == {recorded.denied}
    assert ids("--no-has-outcome") == {recorded.untouched}
    assert ids("--where", "outcome=defaulted") == {recorded.approved}


def test_export_takes_the_lifecycle_filters(recorded: Recorded, capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    def exported(*args: str) -> set[str]:
        out = tmp_path / "out.jsonl"
        code = main(["export", "--data", str(recorded.path), "--format", "jsonl", "--out", str(out), *args])
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert code == (0 if rows else 1)
        assert all(row["model_name"] == "loan" for row in rows)  # the decisions' columns, as without
        return {row["decision_id"] for row in rows}

    assert exported("--effective-label", "approve") == {recorded.denied, recorded.approved}
    assert exported("--has-outcome", "--effective-label", "approve", "--label", "deny") == {recorded.denied}
    assert exported("--no-reviewed") == {recorded.untouched}
    assert exported("--where", "outcome=defaulted") == {recorded.approved}
    assert exported("--reviewed", "--where", "outcome=nothing") == set()


def test_show_prints_the_timeline(recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", recorded.denied, "--data", str(recorded.path)]) == 0
    out = capsys.readouterr().out
    timeline = out[out.index(f"timeline of decision {recorded.denied}"):].splitlines()
    assert "decision  loan 2 -> deny" in timeline[1]
    assert "review    by alice: override; label approve; why: income verified by phone" in timeline[2]
    assert f"[record {recorded.review}]" in timeline[2]
    assert "outcome   repaid, from core-banking" in timeline[3]
    assert timeline[4] == "  effective label: approve"
    assert "[1 decision]" in out


def test_show_a_record_about_a_decision_not_found_here(recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "not-in-this-store", "--data", str(recorded.path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("decision not-in-this-store: refers to a decision not found here")
    assert "by carol: annotate; why: from the old system" in out
    assert main(["show", "nothing-at-all", "--data", str(recorded.path)]) == 1


def test_verify_passes_with_records_and_catches_an_edited_review(recorded: Recorded,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--data", str(recorded.path)]) == 0
    out = capsys.readouterr().out
    assert "3 decisions, 5 outcome/review records, seq 1..8" in out
    assert "1 chain(s), 3 decisions, 5 outcome/review records, 0 problem(s)" in out
    assert "1 outcome/review records: refers to a decision not found here" in out
    [file] = recorded.path.glob("decisions*.jsonl")
    text = file.read_text()
    assert text.count("income verified by phone") == 1
    file.write_text(text.replace("income verified by phone", "income not verified"))
    assert main(["verify", "--data", str(recorded.path)]) == 1
    out = capsys.readouterr().out
    assert f"(decision {recorded.denied}): changed after it was recorded" in out
    assert "1 problem(s)" in out


def test_verify_catches_a_removed_review(recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    [file] = recorded.path.glob("decisions*.jsonl")
    lines = file.read_text().splitlines()
    assert len(lines) == 2  # two exports: drop the review's span from the first
    msg = json.loads(lines[0])
    spans = msg["resourceSpans"][0]["scopeSpans"][0]["spans"]
    kept = [s for s in spans if not any(e["name"] == "model.decision.review" and
                                        any(a["value"].get("stringValue") == "alice" for a in e["attributes"])
                                        for e in s.get("events", []))]
    assert len(kept) == len(spans) - 1
    msg["resourceSpans"][0]["scopeSpans"][0]["spans"] = kept
    file.write_text(json.dumps(msg) + "\n" + lines[1] + "\n")
    assert main(["verify", "--data", str(recorded.path)]) == 1
    assert re.search(r"seq \d+ .*records at seq \d+\.\.\d+ are missing \(deleted\)", capsys.readouterr().out)


def test_report_chain_continuity_counts_records_and_checkpoints(tmp_path: Path) -> None:
    from decisiontrail.signing import _HMAC_PREFIX

    key = _HMAC_PREFIX + base64.b64encode(b"k" * 32).decode()
    cfg = decisiontrail.configure(path=tmp_path / "store", set_global=False, signing_key=key,
                                  anchors=tmp_path / "anchors")
    try:
        d = record_decision("loan", {"income": 1}, "deny", label="deny")
        record_review(d, reviewer="alice", action="override", label="approve")
        cfg.force_flush()
        record_outcome(d, "approve")
        record_decision("loan", {"income": 2}, "deny", label="deny")
    finally:
        cfg.shutdown()  # a closing checkpoint: another link
        set_recorder(None)
    out = tmp_path / "report.html"
    assert main(["report", "--data", str(tmp_path / "store"), "--out", str(out)]) == 0
    page = out.read_text()
    links = int(re.search(r"(\d+) links, 0 gaps, 0 broken links", page).group(1))  # type: ignore[union-attr]
    assert links >= 5, links  # 2 decisions, 2 records and at least the closing checkpoint
    assert "decision.checkpoint" in "".join(p.read_text() for p in (tmp_path / "store").glob("*.jsonl"))
    assert "<td class='n'>100.0 %</td>" in page  # after review, the override matches the outcome


def test_report_gives_override_rate_accuracy_and_confusion_per_version(recorded: Recorded, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    assert main(["report", "--data", str(recorded.path), "--out", str(out)]) == 0
    page = out.read_text()
    section = page[page.index("<h2>Human review and outcomes</h2>"):]
    section = section[:section.index("</section>")]
    # loan 2: 3 decisions, 2 reviewed, 1 overridden; 2 outcomes, neither equal to the model's label.
    cells = re.findall(r"<td(?: class='n')?>([^<]*)</td>", section.split("</table>")[0])
    assert cells == ["loan 2", "3", "2", "1", "33.3 %", "2", "0.0 %", "0.0 %"]
    confusion = section[section.index("Confusion table: loan 2"):]
    assert "<th>defaulted</th><th>repaid</th>" in confusion
    assert "<tr><th>approve</th><td class='n'>1</td><td class='n'>0</td></tr>" in confusion
    assert "<tr><th>deny</th><td class='n'>0</td><td class='n'>1</td></tr>" in confusion
    # Records are links of the chain: no gaps where they sit between decisions.
    assert "8 links, 0 gaps, 0 broken links" in page
