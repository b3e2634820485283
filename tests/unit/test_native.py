"""Selecting the optional native accelerator (decisiontrail.native): off by default, on by
configure(native=True) or DECISIONTRAIL_NATIVE=1, a clear error or a warning when it is missing."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest

import decisiontrail
from decisiontrail.errors import ConfigurationError
from decisiontrail.native import accelerator, use_native
from decisiontrail.recorder import set_recorder


@pytest.fixture(autouse=True)
def _reset(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("DECISIONTRAIL_NATIVE", raising=False)
    yield
    monkeypatch.delenv("DECISIONTRAIL_NATIVE", raising=False)
    use_native(None)
    set_recorder(None)


def test_off_by_default() -> None:
    assert use_native(None) is None
    assert accelerator() is None


def test_the_environment_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # scripts/test.sh installs it (native/): its absence fails here instead of skipping
    monkeypatch.setenv("DECISIONTRAIL_NATIVE", "1")
    mod = use_native(None)
    assert mod is not None and mod.__name__ == "decisiontrail_native"
    assert accelerator() is mod
    assert use_native(False) is None and accelerator() is None


def test_configure_native_true_without_it_installed_raises(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "decisiontrail_native", None)  # import raises ImportError
    with pytest.raises(ConfigurationError, match="pip install ./native"):
        decisiontrail.configure(path=tmp_path, set_global=False, native=True)


def test_the_environment_without_it_installed_warns_and_keeps_python(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "decisiontrail_native", None)
    monkeypatch.setenv("DECISIONTRAIL_NATIVE", "1")
    with caplog.at_level(logging.WARNING, logger="decisiontrail.config"):
        assert use_native(None) is None
    assert "not installed" in caplog.text
