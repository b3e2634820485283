"""The pages of ``decisiontrail serve`` through Flask's test client: search and paging, the decision
page, escaping of hostile content, and the review endpoint's guards (token, CSRF, no endpoint
without a token)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient

import decisiontrail
from decisiontrail.cli import main as cli
from decisiontrail.recorder import set_recorder
from decisiontrail.signing import load_verifier
from decisiontrail.web import create_app
from decisiontrail.web.integrity import IntegrityIndex
from decisiontrail.web.source import DecisionSource

from .conftest import HOSTILE, WebStore, make_store


class FakeRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append((args, kwargs))
        return "review-1"


def client(store: WebStore, **kw: Any) -> FlaskClient:
    app = create_app([store.path], **kw)
    app.config["TESTING"] = True
    return app.test_client()


def test_search_filters_and_pages(web_store: WebStore) -> None:
    c = client(web_store, page_size=5)
    first = c.get("/").get_data(as_text=True)
    assert first.count('class="decision-link"') == 5 and 'rel="next"' in first and 'rel="prev"' not in first
    assert web_store.ids[0] in first and web_store.ids[5] not in first
    second = c.get("/?offset=5").get_data(as_text=True)
    assert web_store.ids[5] in second and 'rel="prev"' in second
    denied = c.get("/?label=deny").get_data(as_text=True)
    assert denied.count('class="decision-link"') == 4  # i = 0, 3, 6, 9
    by_field = c.get("/?where=input.income%3D43000").get_data(as_text=True)
    assert by_field.count('class="decision-link"') == 1 and web_store.ids[3] in by_field
    assert "No decision matches" in c.get("/?model=nope").get_data(as_text=True)


def test_bad_filter_is_an_error_message_not_a_crash(web_store: WebStore) -> None:
    c = client(web_store)
    page = c.get("/?since=yesterday-ish")
    assert page.status_code == 200 and "not a time" in page.get_data(as_text=True)
    assert "field=value" in c.get("/?where=income").get_data(as_text=True)


def test_decision_page_shows_its_parts_and_waterfall(web_store: WebStore) -> None:
    html = client(web_store).get(f"/decisions/{web_store.ids[3]}").get_data(as_text=True)
    assert "&#34;income&#34;: 43000" in html  # input, readable JSON
    assert "debt_ratio" in html  # reason codes
    rows = re.findall(r'<div class="wf-row( wf-this)?">', html)
    assert len(rows) == 3 and rows.count(" wf-this") == 1  # request, feature load, predict (this one)
    assert "Record review" not in html  # read-only without a token
    assert client(web_store).get("/decisions/not-a-decision").status_code == 404


def test_hostile_content_is_escaped_and_scripts_are_forbidden(web_store: WebStore) -> None:
    resp = client(web_store).get(f"/decisions/{web_store.hostile_id}")
    html = resp.get_data(as_text=True)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "script-src" not in resp.headers["Content-Security-Policy"]  # default-src 'none' covers it
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    listing = client(web_store).get("/").get_data(as_text=True)
    assert HOSTILE not in listing


def test_no_write_endpoint_without_a_token(web_store: WebStore) -> None:
    c = client(web_store, recorder=FakeRecorder())
    assert c.post(f"/decisions/{web_store.ids[0]}/review", data={"reviewer": "x", "action": "confirm"}).status_code in (404, 405)


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "the review form carries a CSRF token"
    return m.group(1)


@pytest.mark.parametrize("token, csrf_ok, reviewer, status", [
    ("wrong", True, "ana", 403),
    ("s3cret", False, "ana", 400),
    ("s3cret", True, "", 400),
])
def test_review_guards(web_store: WebStore, token: str, csrf_ok: bool, reviewer: str, status: int) -> None:
    rec = FakeRecorder()
    c = client(web_store, token="s3cret", recorder=rec)
    c.application.config["WTF_CSRF_ENABLED"] = True
    url = f"/decisions/{web_store.ids[0]}"
    csrf = _csrf(c.get(url).get_data(as_text=True)) if csrf_ok else "forged"
    resp = c.post(url + "/review", data={"csrf_token": csrf, "token": token, "reviewer": reviewer,
                                         "action": "override", "label": "approve"})
    assert resp.status_code == status
    assert rec.calls == []


def test_review_with_token_records_and_redirects(web_store: WebStore) -> None:
    rec = FakeRecorder()
    drained = []
    c = client(web_store, token="s3cret", recorder=rec, after_review=lambda: drained.append(1))
    url = f"/decisions/{web_store.ids[0]}"
    csrf = _csrf(c.get(url).get_data(as_text=True))
    resp = c.post(url + "/review", data={"csrf_token": csrf, "token": "s3cret", "reviewer": "ana",
                                         "action": "override", "label": "approve", "rationale": "docs ok"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(url)
    (args, kwargs), = rec.calls
    assert args == (web_store.ids[0],)
    assert kwargs["reviewer"] == "ana" and kwargs["action"] == "override" and kwargs["label"] == "approve"
    assert kwargs["rationale"] == "docs ok" and len(kwargs["trace_id"]) == 32
    assert drained == [1]
    assert "review review-1 recorded" in c.get(url).get_data(as_text=True)


def _verdict_html(store: WebStore, decision_id: str, verifiers: Any = None) -> str:
    src = DecisionSource([store.path])
    checks = IntegrityIndex(src.open, verifiers)
    checks.refresh()
    assert checks.wait(60)
    app = create_app([store.path], source=src, integrity=checks)
    html = app.test_client().get(f"/decisions/{decision_id}").get_data(as_text=True)
    m = re.search(r'<div class="verdict verdict-(\w+)" id="integrity">(.*?)</div>', html, re.S)
    assert m, "the decision page has an integrity verdict"
    return m.group(1) + " " + re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", m.group(2)))


def test_integrity_verdict_signed_intact_then_tampered(tmp_path: Any) -> None:
    assert cli(["keygen", "--out", str(tmp_path / "keys")]) == 0
    store = make_store(tmp_path / "store", n=6, signing_key=tmp_path / "keys" / "decisiontrail.key")
    keys = {v.key_id: v for v in [load_verifier(tmp_path / "keys" / "decisiontrail.pub")]}
    verdict = _verdict_html(store, store.ids[2], keys)
    assert verdict.startswith("intact") and "position 3" in verdict
    assert re.search(r"signed by the checkpoint at position \d+, key \S+", verdict), verdict
    unchecked = _verdict_html(store, store.ids[2])
    assert unchecked.startswith("intact") and "signatures not checked" in unchecked
    # Someone who can write the files changes a label: the page says so.
    (f,) = [p for p in store.path.rglob("*.jsonl")]
    text = f.read_text()
    assert text.count('"stringValue":"deny"') >= 1
    f.write_text(text.replace('"stringValue":"deny"', '"stringValue":"approve"', 1))
    tampered = _verdict_html(store, store.ids[2], keys)
    assert tampered.startswith("tampered"), tampered


def test_report_page_draws_the_charts_for_the_filter(web_store: WebStore) -> None:
    resp = client(web_store).get("/report?label=deny")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and html.count("<svg") >= 3
    assert "label deny" in html and "script-src" not in resp.headers["Content-Security-Policy"]
    assert "<script" not in html


def test_search_through_the_warehouse(web_store: WebStore) -> None:
    assert cli(["compact", "--data", str(web_store.path)]) == 0
    assert (web_store.path / "warehouse").is_dir()
    c = client(web_store, page_size=5)
    assert c.get("/?label=deny").get_data(as_text=True).count('class="decision-link"') == 4
    assert web_store.ids[5] in c.get("/?offset=5").get_data(as_text=True)
    assert "&#34;income&#34;: 43000" in c.get(f"/decisions/{web_store.ids[3]}").get_data(as_text=True)


@pytest.mark.parametrize("compacted", [False, True])
def test_search_by_subject_and_business_key(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, compacted: bool) -> None:
    path = tmp_path / "store"
    cfg = decisiontrail.configure(path=path, set_global=False, hash_secret="s", hash_keys=["applicant"])
    try:
        ids = []
        for i in range(6):
            with decisiontrail.using_subject(f"S-{i % 2}", loan_id=f"L-{i}", applicant=f"a{i}"):
                ids.append(decisiontrail.record_decision("loan", {"income": i}, {"p": 0.5}, label="deny"))
        assert cfg.drain(10_000)
    finally:
        cfg.shutdown()
        set_recorder(None)
    if compacted:  # the subject and keys columns of the warehouse
        assert cli(["compact", "--data", str(path)]) == 0
    monkeypatch.setenv("DECISIONTRAIL_HASH_SECRET", "s")
    monkeypatch.setenv("DECISIONTRAIL_HASH_KEYS", "applicant")
    c = client(WebStore(path, ids, ""))
    found = c.get("/?subject=S-1").get_data(as_text=True)  # given in clear, searched as its pseudonym
    assert found.count('class="decision-link"') == 3 and all(ids[i] in found for i in (1, 3, 5))
    by_key = c.get("/?key=loan_id%3DL-4").get_data(as_text=True)
    assert by_key.count('class="decision-link"') == 1 and ids[4] in by_key
    hashed = c.get("/?key=applicant%3Da2&subject=S-0").get_data(as_text=True)  # a hashed key, and both filters
    assert hashed.count('class="decision-link"') == 1 and ids[2] in hashed
    assert "NAME=VALUE" in c.get("/?key=loan_id").get_data(as_text=True)
