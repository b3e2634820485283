"""Model identity: name, version, framework and artifact hash, resolved once per model object."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from .conventions import ModelAttributes as M

__all__ = ["ModelIdentity", "identify", "register_model", "artifact_hash"]

_log = logging.getLogger(__name__)
_FRAMEWORKS = {"sklearn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm",
               "onnxruntime": "onnxruntime", "torch": "pytorch", "transformers": "transformers"}


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    version: str | None = None
    framework: str | None = None
    artifact_hash: str | None = None

    def attributes(self) -> dict[str, Any]:
        """The model attributes of a decision: a new dict each call (the caller adds to it)."""
        return self._attributes.copy()

    @functools.cached_property
    def _attributes(self) -> dict[str, Any]:  # built once per identity (every decision copies it)
        out: dict[str, Any] = {M.NAME: self.name}
        if self.version:
            out[M.VERSION] = self.version
        if self.framework:
            out[M.FRAMEWORK] = self.framework
        if self.artifact_hash:
            out[M.ARTIFACT_HASH] = self.artifact_hash
        return out


_by_object: weakref.WeakKeyDictionary[Any, ModelIdentity] = weakref.WeakKeyDictionary()
_by_id: dict[int, tuple[Any, ModelIdentity]] = {}  # models that cannot be weakly referenced
_registered: weakref.WeakKeyDictionary[Any, tuple[str | None, str | None]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def register_model(model: Any, name: str | None = None, version: str | None = None) -> None:
    """Give a model object the name and version its decisions carry (instead of its class name)."""
    with _lock:
        try:
            _registered[model] = (name, version)
            _by_object.pop(model, None)
        except TypeError:
            setattr(model, "decisiontrail_name", name)
            setattr(model, "decisiontrail_version", version)
            _by_id.pop(id(model), None)


def artifact_hash(model: Any) -> str | None:
    """``sha256:<hex>`` of the pickled model, or None when it cannot be pickled."""
    try:
        data = pickle.dumps(model, protocol=4)
    except Exception:
        return None
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _framework(model: Any) -> str:
    top = type(model).__module__.split(".", 1)[0]
    return _FRAMEWORKS.get(top, top or "python")


def _resolve(model: Any, hash_artifacts: bool) -> ModelIdentity:
    try:
        reg_name, reg_version = _registered.get(model, (None, None))
    except TypeError:
        reg_name, reg_version = None, None
    name = reg_name or getattr(model, "decisiontrail_name", None) or type(model).__name__
    version = reg_version or getattr(model, "decisiontrail_version", None)
    return ModelIdentity(
        name=str(name),
        version=str(version) if version else None,
        framework=_framework(model),
        artifact_hash=artifact_hash(model) if hash_artifacts else None,
    )


def identify(model: Any, hash_artifacts: bool = True) -> ModelIdentity:
    """Identity of a model object (cached per object) or of a model name (a ``str``)."""
    if isinstance(model, str):
        return ModelIdentity(name=model)
    try:
        found = _by_object.get(model)
    except TypeError:
        entry = _by_id.get(id(model))
        found = entry[1] if entry and entry[0] is model else None
    if found is not None:
        return found
    ident = _resolve(model, hash_artifacts)
    with _lock:
        try:
            _by_object[model] = ident
        except TypeError:
            _by_id[id(model)] = (model, ident)  # keeps the model alive: bounded by models in use
    return ident


def default_version() -> str | None:
    return os.environ.get("DECISIONTRAIL_MODEL_VERSION") or None
