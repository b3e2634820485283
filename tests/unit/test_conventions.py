"""docs/semantic-conventions.md and conventions.py describe the same names, and code uses the constants."""

from __future__ import annotations

import re
from pathlib import Path

from decisiontrail import conventions

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "semantic-conventions.md").read_text()


def constants() -> set[str]:
    """Every event name (``*_EVENT``) and every attribute of the ``*Attributes`` classes."""
    module = vars(conventions)
    names = {v for k, v in module.items() if k.endswith("_EVENT") and isinstance(v, str)}
    for cls in (v for k, v in module.items() if k.endswith("Attributes") and isinstance(v, type)):
        names |= {v for k, v in vars(cls).items() if k.isupper()}
    return names


def test_every_constant_is_documented_in_a_table_row() -> None:
    documented = set(re.findall(r"^\| `([a-z0-9_.]+)` \|", DOC, flags=re.M))
    assert constants() <= documented, constants() - documented
    assert documented <= constants(), documented - constants()


def test_every_constant_has_a_docstring() -> None:
    source = (ROOT / "src" / "decisiontrail" / "conventions.py").read_text()
    for name in constants():
        assert re.search(rf'= "{re.escape(name)}"\n\s*"""', source), name


def test_no_attribute_name_is_a_bare_literal_outside_conventions() -> None:
    names = constants() - {conventions.DECISION_EVENT}
    offenders = []
    for path in (ROOT / "src" / "decisiontrail").rglob("*.py"):
        if path.name == "conventions.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for name in names:
                if f'"{name}"' in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {name}")
    assert offenders == []
