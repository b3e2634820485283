"""The exported surface is deliberate: nothing becomes public by accident."""

from __future__ import annotations

import importlib
import pkgutil

import decisiontrail


def test_exported_surface() -> None:
    assert sorted(decisiontrail.__all__) == sorted([
        "__version__", "configure", "Configuration", "record_decision", "audited", "decision",
        "DecisionHandle", "register_model", "using_subject", "AuditSampler", "DecisionTrailError", "ConfigurationError",
        "RecordingError", "DecisionLostError", "record_outcome", "record_review", "InvalidRecordError",
    ])
    for name in decisiontrail.__all__:
        assert hasattr(decisiontrail, name)


def test_every_module_declares_its_surface() -> None:
    for info in pkgutil.walk_packages(decisiontrail.__path__, "decisiontrail."):
        if info.name.endswith(("__main__", "version", ".package")):
            continue
        module = importlib.import_module(info.name)
        assert hasattr(module, "__all__"), info.name


def test_exception_tree() -> None:
    from decisiontrail import errors

    assert issubclass(errors.ConfigurationError, errors.DecisionTrailError)
    assert issubclass(errors.InvalidRecordError, errors.DecisionTrailError)
    assert not issubclass(errors.InvalidRecordError, errors.RecordingError)  # misuse, not telemetry failure
    assert issubclass(errors.DecisionLostError, errors.RecordingError)
    assert issubclass(errors.RecordingError, errors.DecisionTrailError)
