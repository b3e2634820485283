"""OnnxRuntimeInstrumentor against the real ONNX Runtime, with models converted by skl2onnx."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
import pytest
from instrumentation_support import assert_restored, originals
from skl2onnx import to_onnx
from sklearn.linear_model import LinearRegression, LogisticRegression

from decisiontrail.ids import offset_id
from decisiontrail.instrumentation.onnxruntime import OnnxRuntimeInstrumentor

if TYPE_CHECKING:
    from instrumentation_support import Audit

rng = np.random.default_rng(3)
X = rng.normal(size=(120, 4)).astype(np.float32)
Y = np.digitize(X[:, 0], [-0.4, 0.4])
_clf = LogisticRegression().fit(X, Y)
PLAIN = to_onnx(_clf, X[:1], options={id(_clf): {"zipmap": False}}).SerializeToString()
ZIPMAP = to_onnx(_clf, X[:1]).SerializeToString()
_reg = LinearRegression().fit(X, X[:, 1])
REGRESSION = to_onnx(_reg, X[:1]).SerializeToString()


@pytest.fixture
def ox(instrumented: Callable[..., Any]) -> OnnxRuntimeInstrumentor:
    return instrumented(OnnxRuntimeInstrumentor)


def session(model: bytes | str) -> ort.InferenceSession:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def test_a_batch_is_one_decision_per_row_with_label_and_probability(audit: Audit, ox: Any, tmp_path: Path) -> None:
    path = tmp_path / "loan_model.onnx"
    path.write_bytes(PLAIN)
    labels, proba = session(str(path)).run(None, {"X": X[:8]})
    decisions = audit.decisions()
    assert len(decisions) == 8
    assert [s.name for s in audit.spans()] == ["predict loan_model"]
    first = decisions[0].decision_id
    for i, d in enumerate(decisions):
        assert d.decision_id == offset_id(first, i) and d.batch_index == i
        assert d.input == pytest.approx(X[i].tolist())
        assert d.output["label"] == labels[i]
        assert d.output["probabilities"] == pytest.approx(proba[i].tolist(), rel=1e-6)
        assert d.label == str(labels[i]) and d.score == pytest.approx(float(proba[i].max()), rel=1e-6)
    attrs = decisions[0].attributes
    assert attrs["model.framework"] == "onnxruntime"
    assert attrs["model.artifact.hash"] == "sha256:" + hashlib.sha256(PLAIN).hexdigest()


def test_zipmap_outputs_and_sessions_from_bytes(audit: Audit, ox: Any) -> None:
    sess = session(ZIPMAP)
    labels, maps = sess.run(["output_label", "output_probability"], {"X": X[:3]})
    decisions = audit.decisions()
    assert [d.label for d in decisions] == [str(v) for v in labels]
    assert [d.score for d in decisions] == pytest.approx([max(m.values()) for m in maps], rel=1e-6)
    assert {d.model_name for d in decisions} == {sess.get_modelmeta().graph_name}


def test_a_single_output_is_the_row_output(audit: Audit, ox: Any) -> None:
    (out,) = session(REGRESSION).run(None, {"X": X[:2]})  # shape (2, 1)
    decisions = audit.decisions()
    assert [d.output[0] for d in decisions] == pytest.approx(out[:, 0].tolist(), rel=1e-6)
    assert all(d.label is None for d in decisions)


def batch_total_model() -> bytes:
    """A model whose output is one number for the whole batch (the sum of its inputs)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["X"], ["total"], keepdims=0)], "batch_total",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def test_outputs_that_do_not_align_with_rows_are_one_decision(audit: Audit, ox: Any) -> None:
    (total,) = session(batch_total_model()).run(None, {"X": X[:3]})
    (d,) = audit.decisions()
    assert d.model_name == "batch_total" and d.batch_index is None
    assert np.allclose(d.input["X"], X[:3]) and d.output["total"] == pytest.approx(float(total))


def test_an_empty_batch_makes_no_decision(audit: Audit, ox: Any) -> None:
    session(REGRESSION).run(None, {"X": X[:0]})
    assert audit.decisions() == []


def test_uninstrument_restores_run(audit: Audit) -> None:
    inst = OnnxRuntimeInstrumentor()
    inst.instrument()
    try:
        sess = session(PLAIN)
        wrapped = inst.wrapped
        before = originals(wrapped)
        assert [(o.__name__, n) for o, n in wrapped] == [("Session", "run")]
    finally:
        inst.uninstrument()
    assert_restored(wrapped, before)
    sess.run(None, {"X": X[:2]})
    assert audit.decisions() == []
