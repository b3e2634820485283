"""Recording decisions: the hot path.

``record_decision`` builds one ``model.decision`` event (id, model identity, encoded and redacted
input/output, label, score, explanation) and adds it to the current recording span, or
to a new ``predict <model>`` span child of the current context. ``audited`` and ``decision`` are the
decorator and context-manager forms. By default a failure while recording is logged and counted and
the inference result is returned; a decision that failed to encode is still recorded, with
``decision.error`` saying what failed. With ``fail_closed=True`` the failure raises RecordingError.

The modules, by role: ``settings`` (RecorderSettings), ``building`` (a decision's attributes),
``recording`` (the Recorder: events onto spans), ``functions`` (the process's recorder,
``record_decision``, ``decision``), ``decorator`` (``audited``).
"""

from __future__ import annotations

from .building import FULL_TEXT, MAX_APPLICATION_ATTRIBUTES
from .decorator import audited
from .functions import DecisionHandle, decision, get_recorder, record_decision, set_recorder
from .recording import Recorder
from .settings import AttributeValue, RecorderSettings

__all__ = [
    "RecorderSettings", "Recorder", "record_decision", "audited", "decision",
    "get_recorder", "set_recorder", "DecisionHandle", "AttributeValue", "FULL_TEXT", "MAX_APPLICATION_ATTRIBUTES",
]
