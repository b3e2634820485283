"""loads_paced: json.loads's value (or its error) for any text, parsed span by span with pauses."""

from __future__ import annotations

import json

import pytest

from decisiontrail.exporters import paced_json
from decisiontrail.exporters.otlpjson import spans_to_otlp_json
from decisiontrail.exporters.paced_json import loads_paced
from test_otlp_encoders import spans

DOCS = [
    '{"resourceSpans":[]}', "{}", "[]", '"text"', "12", "null", ' \n{ "a" : [ 1 , {"b": [ ] } ] , "a": 2 }\n',
    '{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":{"doubleValue":NaN}}]},'
    '"scopeSpans":[{"scope":{"name":"s"},"spans":[{"x":[[[[[[1]]]]]]},{"é":"\\ud800"}]}]}]}',
    json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"i": i, "s": "x" * i} for i in range(40)]}]}]}, indent=2),
]
BAD = ['{"a":1,}', '{"a" 1}', "[1 2]", '{"a":1} x', "", "{", '{"a":[1,]}', "\ufeff{}", "{'a':1}", '{"a":01}']


@pytest.mark.parametrize("text", DOCS)
def test_the_value_is_json_loads_value(text: str) -> None:
    got, want = loads_paced(text), json.loads(text)
    assert json.dumps(got) == json.dumps(want)
    assert json.dumps(loads_paced(text.encode("utf-8", "surrogatepass"))) == json.dumps(want)


@pytest.mark.parametrize("text", BAD)
def test_text_that_is_not_json_gets_json_loads_error(text: str) -> None:
    with pytest.raises(ValueError) as want:
        json.loads(text)
    with pytest.raises(ValueError) as got:
        loads_paced(text)
    assert str(got.value) == str(want.value)


def test_a_request_is_parsed_with_pauses_between_its_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[int] = []
    monkeypatch.setattr(paced_json, "maybe_pause", lambda: pauses.append(1))
    batch = spans() * 40
    text = spans_to_otlp_json(batch)
    assert json.dumps(loads_paced(text)) == json.dumps(json.loads(text))  # (NaN != NaN: compare the text)
    assert len(pauses) >= len(batch) // paced_json.CHUNK_SPANS
