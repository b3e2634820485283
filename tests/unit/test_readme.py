"""The README's quickstart runs as written (its Python blocks in order, as one program), and the
commands after it work on what it recorded."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
CLI = Path(sys.executable).parent / "decisiontrail"


def _blocks(section: str, lang: str) -> list[str]:
    start = README.index(section)
    end = README.find("\n## ", start + len(section))
    return re.findall(rf"```{lang}\n(.*?)```", README[start:end], flags=re.S)


def test_the_quickstart_runs_as_written_and_its_commands_work(tmp_path: Path) -> None:
    snippet = "\n".join(_blocks("## Quickstart", "python"))  # one program, shown in steps
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DECISIONTRAIL_"))}
    p = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    commands = [line for block in _blocks("## Quickstart", "bash") for line in block.splitlines()
                if line.startswith("decisiontrail ") and "<" not in line
                and not line.startswith("decisiontrail serve")]  # a server: it does not return
    assert len(commands) >= 4
    for command in commands:
        argv = [str(CLI), *shlex.split(command, comments=True)[1:]]
        r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stdout.strip(), (command, r.returncode, r.stdout, r.stderr)
