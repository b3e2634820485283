"""Building a decision's attributes: model identity, encoded and redacted fields, bounded values.

:class:`RecordBuilder` is the part of the Recorder that turns what the application gave into the
attributes of one event, valid by construction (recording.py adds them to spans). A field too big
for ``max_chars`` becomes a bounded summary whose full text is hashed here (and offloaded to the
payload store when there is one); a whole field is hashed later, on the export thread.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .. import stats
from ..conventions import DecisionAttributes as D
from ..conventions import LifecycleAttributes as L
from ..conventions import ModelAttributes as M
from ..encoding import FieldEncoder, bound_attribute, sha256_hex, to_jsonable
from ..errors import RecordingError
from ..models import ModelIdentity, identify
from .settings import AttributeValue, RecorderSettings

__all__ = ["RecordBuilder", "FULL_TEXT", "MAX_APPLICATION_ATTRIBUTES"]

_log = logging.getLogger(__name__)
_MAX_KEY = 256  # characters of an attribute name from the application
MAX_APPLICATION_ATTRIBUTES = 128  # the SDK's default event attribute count limit, which emit() bypasses
# field -> (hash of its full text, reference to its full text in the payload store: decisions only)
FULL_TEXT: dict[str, tuple[str, str | None]] = {
    D.INPUT: (D.INPUT_HASH, D.INPUT_REF), D.OUTPUT: (D.OUTPUT_HASH, D.OUTPUT_REF),
    D.EXPLANATION: (D.EXPLANATION_HASH, D.EXPLANATION_REF),
    L.OUTCOME_VALUE: (L.OUTCOME_HASH, None), L.REVIEW_OUTPUT: (L.REVIEW_OUTPUT_HASH, None)}


class RecordBuilder:
    def __init__(self, settings: RecorderSettings | None = None) -> None:
        self.settings = settings or RecorderSettings()
        self._names: dict[tuple[str, str | None], ModelIdentity] = {}
        self._encode = FieldEncoder(self.settings.max_chars, self.settings.max_depth).encode
        self._identity_cut: dict[ModelIdentity, list[str]] = {}  # identities whose strings were bounded

    def identity(self, model: Any, version: str | None) -> ModelIdentity:
        if isinstance(model, ModelIdentity):  # resolved by the caller (an instrumentor)
            v = version or model.version or self.settings.model_version
            return self._bounded_identity(model if v == model.version else ModelIdentity(
                model.name, v, model.framework, model.artifact_hash))
        key = (model, version) if isinstance(model, str) else None
        if key is not None:
            found = self._names.get(key)
            if found is not None:
                return found
        ident = identify(model, self.settings.hash_artifacts)
        v = version or ident.version or self.settings.model_version
        if v != ident.version:
            ident = ModelIdentity(ident.name, v, ident.framework, ident.artifact_hash)
        ident = self._bounded_identity(ident)
        if key is not None and len(self._names) < 4096:
            self._names[key] = ident
        return ident

    def _bounded_identity(self, ident: ModelIdentity) -> ModelIdentity:
        limit = self.settings.max_chars
        if len(ident.name) <= limit and len(ident.version or "") <= limit:
            return ident
        cut: list[str] = []
        bounded = ModelIdentity(bound_attribute(M.NAME, ident.name, limit, cut),
                                bound_attribute(M.VERSION, ident.version, limit, cut),
                                ident.framework, ident.artifact_hash)
        if len(self._identity_cut) < 4096:
            self._identity_cut[bounded] = cut
        return bounded

    def attribute(self, attrs: dict[str, Any], key: str, value: Any, truncated: list[str]) -> None:
        """The one way a value the application gave becomes an attribute: bounded, of a valid
        attribute type (encoding/attributes.py), its path in ``truncated`` when it was cut."""
        v = bound_attribute(key, value, self.settings.max_chars, truncated)
        if v is not None:
            attrs[key] = v

    def application_attributes(self, attrs: dict[str, Any], attributes: Mapping[str, Any],
                               truncated: list[str]) -> None:
        """The application's own attributes, bounded; they never replace one decisiontrail set. Past
        ``MAX_APPLICATION_ATTRIBUTES`` the rest are left out and ``attributes`` is named in ``truncated``."""
        for n, (k, v) in enumerate(attributes.items()):
            if n == MAX_APPLICATION_ATTRIBUTES:
                truncated.append("attributes")
                break
            k = k if isinstance(k, str) and len(k) <= _MAX_KEY else bound_attribute("key", str(k), _MAX_KEY, [])
            if k not in attrs:
                self.attribute(attrs, k, v, truncated)

    def _encode_into(self, attrs: dict[str, Any], key: str, name: str, value: Any,
                     truncated: list[str], redacted: list[str]) -> None:
        s = self.settings
        if s.redaction.active:
            value = s.redaction.apply(to_jsonable(value, s.max_depth), name, redacted)
        encoded = self._encode(value, name)
        if isinstance(encoded, str):
            attrs[key] = encoded  # whole: the export thread hashes it (chain.ChainStage), off this thread
            return
        # A bounded summary: the full text is not kept, so its hash is taken now (and the text
        # offloaded, when there is a payload store, before the decision can be exported).
        attrs[key] = encoded.text
        hash_key, ref_key = FULL_TEXT[key]
        attrs[hash_key] = sha256_hex(encoded.full)
        truncated.extend(encoded.cut)
        if s.payload_store is not None and ref_key is not None:
            problem = s.payload_store.offload(attrs, ref_key, encoded.full)
            if problem:
                attrs[D.ERROR] = f"{attrs[D.ERROR]}; {problem}" if D.ERROR in attrs else problem

    def build(self, decision_id: str, ident: ModelIdentity, inputs: Any, output: Any, *,
              label: Any = None, score: Any = None, explanation: Any = None,
              reason_codes: Sequence[str] | None = None,
              attributes: Mapping[str, AttributeValue] | None = None) -> dict[str, Any]:
        attrs: dict[str, Any] = ident.attributes()
        attrs[D.ID] = decision_id
        truncated: list[str] = list(self._identity_cut.get(ident, ())) if self._identity_cut else []
        redacted: list[str] = []
        self._encode_into(attrs, D.INPUT, "input", inputs, truncated, redacted)
        self._encode_into(attrs, D.OUTPUT, "output", output, truncated, redacted)
        if explanation is not None:
            self._encode_into(attrs, D.EXPLANATION, "explanation", explanation, truncated, redacted)
        if label is not None:
            self.attribute(attrs, D.LABEL, label if isinstance(label, str) else str(to_jsonable(label)), truncated)
        if score is not None:
            f = float(score)
            if math.isfinite(f):  # OTLP JSON has no NaN; a non-finite score stays in the output
                attrs[D.SCORE] = f
        if reason_codes:
            self.attribute(attrs, D.REASON_CODES, [str(c) for c in reason_codes], truncated)
        if attributes:
            self.application_attributes(attrs, attributes, truncated)
        if truncated:
            attrs[D.TRUNCATED] = truncated
        if redacted:
            attrs[D.REDACTED] = redacted
        return attrs

    def _failed(self, decision_id: str, model: Any, exc: BaseException, inputs: Any = None,
                output: Any = None) -> dict[str, Any]:
        """A decision that failed to build is still recorded, minimal, saying what failed."""
        stats.add("recording_errors")
        if self.settings.fail_closed:
            raise RecordingError(f"decision {decision_id} could not be recorded: {exc!r}") from exc
        _log.warning("decisiontrail: recording decision %s partly failed: %r", decision_id, exc)
        try:
            name = model if isinstance(model, str) else (
                model.name if isinstance(model, ModelIdentity) else type(model).__name__)
        except Exception:
            name = "unknown"
        cut: list[str] = []
        redacted: list[str] = []
        attrs: dict[str, Any] = {M.NAME: bound_attribute(M.NAME, str(name), self.settings.max_chars, cut),
                                 D.ID: decision_id, D.ERROR: f"{type(exc).__name__}: {exc}"[:1000]}
        for key, field_name, value in ((D.INPUT, "input", inputs), (D.OUTPUT, "output", output)):
            try:  # what failed was elsewhere (a score that is not a number): keep the input and output
                self._encode_into(attrs, key, field_name, value, cut, redacted)
            except Exception:
                attrs[key] = "null"
        if cut:
            attrs[D.TRUNCATED] = cut
        if redacted:
            attrs[D.REDACTED] = redacted
        return attrs
