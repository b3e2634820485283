"""The decisiontrail command, driven for real on a store the demo writes."""

from __future__ import annotations

import csv
import io
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "decisiontrail.cli", *args], capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}: {p.stderr}")
    return p


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "data"
    p = run("demo", "--out", str(out), "--n", "40")
    assert f"Recorded 40 decisions from 40 requests into {out.resolve()}" in p.stdout
    assert f"decisiontrail.cli query --data {out}" in p.stdout  # run as python -m: printed that way
    return out


def jsonl(*args: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in run("query", *args, "--format", "jsonl").stdout.splitlines()]


def test_query_returns_every_decision_with_the_documented_keys(demo: Path) -> None:
    rows = jsonl("--data", str(demo))
    assert len(rows) == 40
    for key in ("decision_id", "model_name", "model_version", "trace_id", "span_id", "timestamp", "input", "output"):
        assert all(key in r for r in rows), key
    assert rows[0]["model_name"] == "loan-approval" and rows[0]["timestamp"].endswith("Z")
    assert rows[0]["input"]["national_id"] == "[REDACTED]"


def test_filters(demo: Path) -> None:
    rows = jsonl("--data", str(demo))
    denied = jsonl("--data", str(demo), "--label", "deny")
    assert denied and all(r["label"] == "deny" for r in denied)
    assert len(denied) == sum(r["label"] == "deny" for r in rows)
    one = rows[5]
    assert [r["decision_id"] for r in jsonl("--data", str(demo), "--trace-id", one["trace_id"])] == [one["decision_id"]]
    by_input = jsonl("--data", str(demo), "--where", f"input.income={one['input']['income']}")
    assert one["decision_id"] in [r["decision_id"] for r in by_input]
    assert jsonl("--data", str(demo), "--model", "loan-approval", "--version", "1.0.0", "--since", "1h") == rows
    assert run("query", "--data", str(demo), "--until", "2000-01-01T00:00:00Z", check=False).returncode == 1
    assert len(jsonl("--data", str(demo), "--limit", "3")) == 3


def test_table_and_csv(demo: Path) -> None:
    table = run("query", "--data", str(demo), "--limit", "2").stdout.splitlines()
    assert table[0].split() == ["timestamp", "decision_id", "model_name", "model_version", "label", "score", "trace_id"]
    assert len(table) == 3
    rows = list(csv.DictReader(io.StringIO(run("query", "--data", str(demo), "--format", "csv").stdout)))
    assert len(rows) == 40 and json.loads(rows[0]["input"])["national_id"] == "[REDACTED]"
    # Full precision: the CSV score is the recorded double, not the table's 4 decimals.
    scores = {r["decision_id"]: r["score"] for r in jsonl("--data", str(demo))}
    assert all(float(r["score"]) == scores[r["decision_id"]] for r in rows)
    assert any(len(r["score"].split(".")[1]) > 4 for r in rows)


def test_show_a_decision_with_its_trace(demo: Path) -> None:
    one = jsonl("--data", str(demo))[0]
    out = run("show", one["decision_id"], "--data", str(demo)).stdout
    assert f'"decision_id": "{one["decision_id"]}"' in out
    assert f"trace {one['trace_id']}: 2 spans" in out
    assert "- POST /loans" in out and "  - predict loan-approval" in out and "[1 decision]" in out


def test_show_a_trace_id(demo: Path) -> None:
    one = jsonl("--data", str(demo))[3]
    out = run("show", one["trace_id"], "--data", str(demo)).stdout
    assert one["decision_id"] in out


def test_exit_codes(demo: Path) -> None:
    assert run("show", "no-such-id", "--data", str(demo), check=False).returncode == 1
    assert run("show", "x", check=False).returncode == 2
    missing = run("query", "--data", str(demo / "missing"), check=False)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no audit data at" in missing.stderr
    assert run("query", check=False).returncode == 2


def test_verify(demo: Path) -> None:
    out = run("verify", "--data", str(demo)).stdout
    assert "(loan-service-demo): 40 decisions, seq 1..40, no checkpoint, unsigned" in out
    assert "1 chain(s), 40 decisions, 0 problem(s)" in out
    assert "not proven: no chain has a checkpoint" in out  # the demo without --signing-key


def test_a_signed_demo_verifies_with_its_public_key(tmp_path: Path) -> None:
    run("keygen", "--out", str(tmp_path / "keys"))
    out = run("demo", "--out", str(tmp_path / "data"), "--n", "60", "--signing-key",
              str(tmp_path / "keys" / "decisiontrail.key"), "--anchors", str(tmp_path / "anchors")).stdout
    command = next(shlex.split(line) for line in out.splitlines() if " verify --data " in line)
    assert command[-4:] == ["--public-key", str(tmp_path / "keys" / "decisiontrail.pub"),
                            "--anchors", str(tmp_path / "anchors")]
    verified = run(*command[command.index("verify"):]).stdout
    assert "(loan-service-demo): 60 decisions" in verified and verified.count(", closed") == 1
    assert "verified: signed by key" in verified


def test_compact_then_query_show_and_verify_read_the_warehouse(demo: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(demo, data)
    before = jsonl("--data", str(data))
    out = run("compact", "--data", str(data)).stdout
    assert out.startswith("40 decisions and 80 spans added to ") and (data / "warehouse" / "MANIFEST").exists()
    assert "0 decisions and 0 spans added" in run("compact", "--data", str(data)).stdout
    assert jsonl("--data", str(data)) == before
    assert jsonl("--data", str(data), "--label", "deny") == [r for r in before if r["label"] == "deny"]
    one = before[7]
    key = f"input.applicant_id={one['input']['applicant_id']}"
    assert [r["decision_id"] for r in jsonl("--data", str(data), "--where", key)] == [one["decision_id"]]
    shown = run("show", one["decision_id"], "--data", str(data)).stdout
    assert f'"decision_id": "{one["decision_id"]}"' in shown and f"trace {one['trace_id']}: 2 spans" in shown
    assert "  - predict loan-approval" in shown and "[1 decision]" in shown
    assert "1 chain(s), 40 decisions, 0 problem(s)" in run("verify", "--data", str(data)).stdout
    assert "example:" in run("compact", "--help").stdout


def test_sql_and_export_over_the_views(demo: Path, tmp_path: Path) -> None:
    rows = jsonl("--data", str(demo))
    denied = sorted(r["decision_id"] for r in rows if r["label"] == "deny")
    out = run("sql", "--data", str(demo), "--format", "jsonl",
              "SELECT label, count(*) AS n FROM decisions GROUP BY label ORDER BY label").stdout
    assert [json.loads(line) for line in out.splitlines()] == [
        {"label": lbl, "n": sum(r["label"] == lbl for r in rows)} for lbl in sorted({r["label"] for r in rows})]
    spans = run("sql", "--data", str(demo), "SELECT count(*) AS n FROM spans").stdout.split()
    assert spans == ["n", "80"]
    assert run("sql", "--data", str(demo), "SELECT nope FROM decisions", check=False).returncode == 2
    for fmt in ("parquet", "csv", "jsonl"):
        target = tmp_path / f"denied.{fmt}"
        p = run("export", "--data", str(demo), "--format", fmt, "--out", str(target), "--label", "deny")
        assert f"{len(denied)} decisions written to {target}" in p.stdout
        got = run("sql", "--data", str(demo), "--format", "jsonl",
                  f"SELECT decision_id FROM read_{'csv' if fmt == 'csv' else 'json' if fmt == 'jsonl' else 'parquet'}"
                  f"('{target}') ORDER BY 1").stdout
        assert [json.loads(line)["decision_id"] for line in got.splitlines()] == denied
    key = f"input.applicant_id={rows[3]['input']['applicant_id']}"
    run("export", "--data", str(demo), "--format", "jsonl", "--out", str(tmp_path / "one.jsonl"), "--where", key)
    one = [json.loads(line) for line in (tmp_path / "one.jsonl").read_text().splitlines()]
    assert [r["decision_id"] for r in one] == [rows[3]["decision_id"]] and one[0]["input"] == rows[3]["input"]
    for command in ("sql", "export", "report", "compact"):
        assert "example" in run(command, "--help").stdout
