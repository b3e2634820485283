"""``decisiontrail serve`` in a real browser: Debian's chromium, driven by Playwright, against the
real server process on 127.0.0.1. Screenshots are checked for drawn content (the waterfall's bars
in their colours), not only the DOM."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from .conftest import HOSTILE, WebStore, make_store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root in a sandbox without a network: no sandbox, no background connections, no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
BAR = (0x3C, 0x78, 0xB4)       # .wf-bar
THIS_BAR = (0xD9, 0x82, 0x2B)  # .wf-this .wf-bar: the decision's own span


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert os.path.exists(CHROMIUM), "chromium is installed by scripts/test.sh"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, WebStore]]:
    store = make_store(tmp_path_factory.mktemp("web") / "store")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["DECISIONTRAIL_SERVE_TOKEN"] = "s3cret"
    proc = subprocess.Popen([sys.executable, "-m", "decisiontrail.cli", "serve", "--data", str(store.path),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert m, f"serve did not start: {line}{proc.stdout.read() if proc.poll() is not None else ''}"
    yield f"http://127.0.0.1:{m.group(1)}", store
    proc.terminate()
    proc.wait(10)


def pixels_of(png: bytes, rgb: tuple[int, int, int]) -> int:
    colours = Image.open(io.BytesIO(png)).convert("RGB").getcolors(1 << 24) or []
    return sum(n for n, px in colours if all(abs(a - b) <= 12 for a, b in zip(px, rgb)))


HEADER = (0x1F, 0x3A, 0x5F)  # the page header's background


def assert_drawn(page: Page) -> bytes:
    """A screenshot of the whole page that shows the page was drawn: its header band, and text (a
    page of text has hundreds of anti-aliased shades; a blank or error-only page has a handful)."""
    png = page.screenshot(full_page=True)
    colours = Image.open(io.BytesIO(png)).convert("RGB").getcolors(1 << 24) or []
    assert pixels_of(png, HEADER) > 20_000, "the header was drawn"
    assert len(colours) > 100, f"only {len(colours)} colours: nothing but flat boxes was drawn"
    return png


def new_page(browser: Browser) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return page, dialogs


def test_search_then_open_a_decision_and_see_its_waterfall(browser: Browser, served: tuple[str, WebStore]) -> None:
    url, store = served
    page, _ = new_page(browser)
    page.goto(url + "/")
    page.fill("input[name=label]", "deny")
    page.click("button[type=submit]")
    links = page.locator("a.decision-link")
    expect(links).to_have_count(4)  # waits for the results page, as the rows below wait for theirs
    assert_drawn(page)
    links.first.click()
    expect(page).to_have_url(re.compile(f"/decisions/{store.ids[0]}$"))
    waterfall = page.locator("#waterfall")
    expect(waterfall.locator(".wf-row")).to_have_count(3)  # a navigation commits before its page is parsed
    png = waterfall.screenshot()
    assert pixels_of(png, BAR) > 200 and pixels_of(png, THIS_BAR) > 50, "the waterfall's bars were drawn"
    assert "income" in page.inner_text("#input")
    assert_drawn(page)


def test_hostile_input_renders_as_text(browser: Browser, served: tuple[str, WebStore]) -> None:
    url, store = served
    page, dialogs = new_page(browser)
    page.goto(f"{url}/decisions/{store.hostile_id}")
    assert HOSTILE in page.inner_text("#input")
    assert_drawn(page)
    assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
    page.goto(url + "/")
    assert dialogs == [], "no script ran"


def test_review_refused_without_the_token(browser: Browser, served: tuple[str, WebStore]) -> None:
    url, store = served
    page, _ = new_page(browser)
    page.goto(f"{url}/decisions/{store.ids[1]}")
    page.fill("input[name=reviewer]", "mallory")
    page.select_option("select[name=action]", "override")
    page.fill("input[name=label]", "deny")
    page.fill("input[name=token]", "guessed")
    page.click("form.review button[type=submit]")
    expect(page.locator("h1")).to_contain_text("403")
    assert_drawn(page)
    page.goto(f"{url}/decisions/{store.ids[1]}")
    assert page.inner_text("dd.effective-label") == "approve"
    assert "mallory" not in page.inner_text("#timeline")


def test_override_changes_the_effective_label_and_keeps_the_original(browser: Browser,
                                                                      served: tuple[str, WebStore]) -> None:
    url, store = served
    page, _ = new_page(browser)
    page.goto(f"{url}/decisions/{store.ids[0]}")  # the model said deny
    page.fill("input[name=reviewer]", "ana")
    page.select_option("select[name=action]", "override")
    page.fill("input[name=label]", "approve")
    page.fill("textarea[name=rationale]", "income verified by phone")
    page.fill("input[name=token]", "s3cret")
    page.click("form.review button[type=submit]")
    expect(page.locator("p.flash")).to_contain_text("recorded")
    assert page.url.endswith(f"/decisions/{store.ids[0]}")
    assert page.inner_text("dd.effective-label") == "approve"
    assert page.inner_text("dd.label").startswith("deny")
    timeline = page.inner_text("#timeline")
    assert "review: override" in timeline and "ana" in timeline and "income verified by phone" in timeline
    assert_drawn(page)
    page.goto(f"{url}/?effective_label=approve&label=deny")
    expect(page.locator("a.decision-link")).to_have_count(1)
    assert page.inner_text("td.effective") == "approve"


def test_report_page_draws_its_charts(browser: Browser, served: tuple[str, WebStore]) -> None:
    url, _ = served
    page, dialogs = new_page(browser)
    page.goto(url + "/")
    page.fill("input[name=model]", "loan-approval")
    page.click("button[formaction]")  # the search form's Report button: the same filters
    expect(page).to_have_url(re.compile(r"/report\?.*model=loan-approval"))
    page.wait_for_load_state()
    charts = page.locator("svg")
    assert charts.count() >= 3
    box = charts.first.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100
    png = charts.first.screenshot()
    colours = Image.open(io.BytesIO(png)).convert("RGB").getcolors(1 << 24) or []
    assert len(colours) > 20, "the chart drew more than a blank box"
    assert dialogs == []
