"""The decisiontrail command as a newcomer meets it: every option explained, bad input a one-line
error with exit status 2 (never a traceback), exit statuses as documented, safe demo defaults."""

from __future__ import annotations

import argparse
import re
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from decisiontrail.cli import build_parser
from decisiontrail.version import __version__

CLI = Path(sys.executable).parent / "decisiontrail"  # the console script pip installed in this venv


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "decisiontrail.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=env)


def one_line_error(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and p.stderr.count("\n") == 1, p.stderr
    return p.stderr


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("usage") / "data"
    p = run("demo", "--out", str(out), "--n", "6")
    assert p.returncode == 0, p.stderr
    return out


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_option_of_every_command_has_help() -> None:
    root = build_parser()
    commands = _subcommands(root)
    assert {"demo", "query", "show", "verify", "pseudonym"} <= set(commands)
    missing = []
    for name, parser in [("", root), *commands.items()]:
        assert parser.description or name == "" or parser.epilog, name
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


@pytest.mark.parametrize("command", ["", "demo", "query", "show", "verify", "pseudonym"])
def test_help_documents_the_exit_statuses(command: str) -> None:
    p = run(*([command] if command else []), "--help")
    assert p.returncode == 0
    text = " ".join(p.stdout.split())
    assert "0 something found" in text and "1 nothing matched" in text and "2 usage error" in text


def test_version() -> None:
    p = run("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"decisiontrail {__version__}"


def test_weeks_and_iso_dates_are_times(demo: Path) -> None:
    for since in ("1w", "2026-01-01", "2026-01-01T00:00:00Z"):
        assert run("query", "--data", str(demo), "--since", since).returncode == 0, since
    assert run("query", "--data", str(demo), "--until", "1w").returncode == 1  # nothing that old


@pytest.mark.parametrize("value", ["yesterday", "1y", "3 days"])
def test_a_bad_time_is_one_line_naming_the_formats(demo: Path, value: str) -> None:
    err = one_line_error(run("query", "--data", str(demo), "--since", value))
    assert "--since" in err and value in err and "1w" in err and "ISO 8601" in err


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_limit_must_be_positive(demo: Path, value: str) -> None:
    assert "--limit" in one_line_error(run("query", "--data", str(demo), "--limit", value))
    assert len(run("query", "--data", str(demo), "--limit", "1", "--format", "jsonl").stdout.splitlines()) == 1


def test_missing_data_directory_is_a_usage_error(tmp_path: Path) -> None:
    for command in ("query", "verify"):
        assert "no audit data at" in one_line_error(run(command, "--data", str(tmp_path / "nowhere")))
    assert "no audit data at" in one_line_error(run("show", "x", "--data", str(tmp_path / "nowhere")))


def test_bad_where_is_a_usage_error(demo: Path) -> None:
    assert "FIELD=VALUE" in one_line_error(run("query", "--data", str(demo), "--where", "income"))


@pytest.mark.parametrize("url", ["127.0.0.1:1", "http://127.0.0.1:1"])
def test_show_warns_about_jaeger_then_prints_the_local_result(demo: Path, url: str) -> None:
    """No scheme, or nothing listening: a warning on stderr, then what the store has."""
    first = run("query", "--data", str(demo), "--limit", "1", "--format", "jsonl").stdout
    decision_id = first.split('"decision_id": "')[1].split('"')[0]
    p = run("show", decision_id, "--data", str(demo), "--jaeger", url)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "warning" in p.stderr and p.stderr.count("\n") == 1
    assert decision_id in p.stdout and "- POST /loans" in p.stdout


def test_demo_refuses_a_directory_with_audit_data_unless_appending(demo: Path, tmp_path: Path) -> None:
    before = sorted((f.name, f.stat().st_size) for f in demo.rglob("*") if f.is_file())
    err = one_line_error(run("demo", "--out", str(demo), "--n", "2"))
    assert "--append" in err and "already holds audit data" in err
    assert sorted((f.name, f.stat().st_size) for f in demo.rglob("*") if f.is_file()) == before
    other = tmp_path / "other"
    assert run("demo", "--out", str(other), "--n", "2").returncode == 0
    p = run("demo", "--out", str(other), "--n", "3", "--append")
    assert p.returncode == 0 and "Recorded 3 decisions" in p.stdout, p.stderr
    assert len(run("query", "--data", str(other), "--format", "jsonl").stdout.splitlines()) == 5


def test_store_files_are_private(demo: Path) -> None:
    files = [f for f in demo.rglob("*") if f.is_file()]
    assert files
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert stat.S_IMODE(demo.stat().st_mode) == 0o700


def test_the_demo_prints_commands_that_work_as_printed(tmp_path: Path) -> None:
    """Run as the venv's console script (what scripts/demo.sh does) with the venv not on PATH: the
    printed commands name the CLI by its full path, and each one runs as printed."""
    assert CLI.is_file(), "pip install -e . puts the decisiontrail script next to the interpreter"
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if Path(p).resolve() != CLI.parent.resolve()) or "/usr/bin:/bin"
    p = subprocess.run([str(CLI), "demo", "--n", "8"], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    commands = [line.strip() for line in p.stdout.splitlines() if line.startswith("  ")]
    assert len(commands) == 3 and all(c.startswith(str(CLI)) for c in commands), p.stdout
    for command in commands:
        r = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
        assert r.returncode in (0, 1) and "error" not in r.stderr, (command, r.stderr)
        assert r.returncode == 0 or "--label deny" in command, (command, r.stdout)


def test_demo_script_resolves_its_directory_before_changing_to_the_repository() -> None:
    script = (Path(__file__).resolve().parents[2] / "scripts" / "demo.sh").read_text()
    assert script.index('out="$PWD/$out"') < script.index('cd "$(dirname "$0")/.."')
    assert '"$PWD/.venv/bin/decisiontrail" demo --out "$out"' in script


def test_no_collector_default_directory_sits_inside_the_demo_store() -> None:
    """Otherwise `query --data decisiontrail-data` reads the collector's audit files with the demo's."""
    demo_default = Path(next(a.default for a in _subcommands(build_parser())["demo"]._actions if a.dest == "out"))
    configs = sorted((Path(__file__).resolve().parents[2] / "collector-config").rglob("*.yaml"))
    defaults = [Path(d) for c in configs
                for d in re.findall(r"\$\{env:DT_[A-Z_]*DIR:-([^}$]+)\}", c.read_text())]
    assert defaults, "the collector configs name default directories"
    for d in defaults:
        assert demo_default.resolve() not in [d.resolve(), *d.resolve().parents], d
