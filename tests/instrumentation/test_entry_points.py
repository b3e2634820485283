"""The instrumentors as ``opentelemetry-instrument`` finds them: entry points, extras, dependencies."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
DECLARED = PYPROJECT["project"]["entry-points"]["opentelemetry_instrumentor"]


def test_every_instrumentor_is_declared() -> None:
    assert set(DECLARED) == {"sklearn", "xgboost", "lightgbm", "onnxruntime", "decisiontrail_flask"}


def test_extras_match_the_instrumented_versions_exactly() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    for target in DECLARED.values():
        module, _, _ = target.partition(":")
        package = importlib.import_module(f"{module}.package")
        library = module.rsplit(".", 1)[1]
        assert extras[library] == list(package._instruments), library


def test_entry_points_load_base_instrumentors_of_their_library() -> None:
    installed = {e.name: e for e in entry_points(group="opentelemetry_instrumentor")
                 if e.value.startswith("decisiontrail.")}
    assert {name: e.value for name, e in installed.items()} == DECLARED, "pip install -e . to register them"
    for name, ep in installed.items():
        cls = ep.load()
        assert issubclass(cls, BaseInstrumentor)
        instruments = tuple(cls().instrumentation_dependencies())
        assert instruments == importlib.import_module(f"{ep.value.partition(':')[0]}.package")._instruments
        assert get_dependency_conflicts(list(instruments)) is None, f"{name}: the test environment lacks it"


def test_opentelemetry_instrument_audits_an_unmodified_script(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        "import numpy as np\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "X = np.arange(40.0).reshape(20, 2)\n"
        "y = (X[:, 0] > 20).astype(int)\n"
        "print('predicted', LogisticRegression().fit(X, y).predict(X[:3]).tolist())\n",
        encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DECISIONTRAIL_"))}
    env |= {"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "script"}
    bindir = Path(sys.executable).parent
    done = subprocess.run([str(bindir / "opentelemetry-instrument"), sys.executable, str(script)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "predicted [0, 0, 0]" in done.stdout
    decoder, text, spans, pos = json.JSONDecoder(), done.stdout, [], 0
    while (start := text.find("{", pos)) >= 0:  # the console exporter prints one JSON object per span
        obj, pos = decoder.raw_decode(text, start)
        spans.append(obj)
    (predict,) = [s for s in spans if s["name"] == "predict LogisticRegression"]
    (event,) = predict["events"]
    assert event["name"] == "model.decision" and event["attributes"]["decision.batch.count"] == 3


def test_the_instrumentation_package_exports_only_its_api() -> None:
    import decisiontrail.instrumentation as instrumentation

    assert sorted(instrumentation.__all__) == ["DecisionIds", "collect_decisions"]
