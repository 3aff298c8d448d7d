"""The chat page in a real headless Chromium against a real `recagent serve`.

Real parts: Debian's Chromium (`make browser`), driven by Playwright with its
`executable_path` (never a browser download); `recagent serve --no-llm` as a process on a
free loopback port, over MovieLens 100K ingested and fitted in a temporary home as
`make demo` does. What a person does on the page is what the test does: type turns,
click "Seen it", remove a chip; it checks what any ranking must respect (a seen item never
comes back, a ruled-out genre stays out) and that the page shows what the service holds.

RECAGENT_PAGE_SCREENSHOT=docs/chat-page.png writes the screenshot of a list there
(how docs/chat-page.png is made); otherwise nothing is written outside tmp folders.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ML100K, needs_data
from playwright.sync_api import Browser, Page, sync_playwright

from recagent.cli.main import main
from recagent.llm.backends.artifacts import ArtifactStore
from retrieval.catalog_files import load_movielens

pytestmark = [pytest.mark.integration, pytest.mark.browser, needs_data]

CHROMIUM = Path(os.environ.get("RECAGENT_CHROMIUM", "/usr/bin/chromium"))
"""Debian's `chromium` package (`make browser`, a prerequisite of `make test`)."""
SCREENSHOT = os.environ.get("RECAGENT_PAGE_SCREENSHOT")
START_S = 120
"""How long the service may take to answer /readyz (it loads the catalog first)."""
STEP_MS = 60_000
"""How long one page action may take: a turn retrieves, ranks and explains on 2 cores."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, artifact_store: ArtifactStore) -> Path:
    """`make demo`'s set-up in a tmp home: items and ratings ingested, fusion weights fitted."""
    home = tmp_path_factory.mktemp("serve-page-home")
    (home / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    assert main(["ingest", "--movielens", str(ML100K), "--home", str(home)]) == 0
    assert main(["fit", "--users", "20", "--no-llm", "--home", str(home)]) == 0
    return home


@pytest.fixture(scope="module")
def service(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`recagent serve --no-llm` on a free loopback port; yields its base URL."""
    yield from _serve(home, tmp_path_factory)


API_KEY = "page-test-key"


@pytest.fixture(scope="module")
def keyed_service(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same, run with --api-key (its own sessions database)."""
    database = f"sqlite:///{tmp_path_factory.mktemp('keyed') / 'sessions.sqlite'}"
    yield from _serve(home, tmp_path_factory, "--api-key", API_KEY, "--database", database)


def _serve(home: Path, tmp_path_factory: pytest.TempPathFactory, *more: str) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("serve-page-log") / "serve.log"
    cmd = [sys.executable, "-m", "recagent.cli", "serve", "--home", str(home), "--no-llm",
           "--host", "127.0.0.1", "--port", str(port), *more]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"recagent serve exited with {proc.returncode}:\n"
                            f"{log_path.read_text()}")
            try:
                if _get(f"{url}/readyz").get("status") == "ready":
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"recagent serve was not ready within {START_S} s:\n"
                            f"{log_path.read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Fails, never skips, without Chromium: `make test` installs it first."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: the page test needs Debian's chromium "
                    "(`make browser`, run by `make test`)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, service: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(STEP_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{service}/")
    yield page
    context.close()
    assert not errors, f"the page threw: {errors}"


@pytest.fixture(scope="module")
def horror() -> set[str]:
    return {i.id for i in load_movielens(ML100K) if i.metadata.get("genre_Horror")}


# ---- what a person does ------------------------------------------------------------------

def settle(page: Page, before: int) -> None:
    """Wait until the page has rendered a newer answer of the service and is idle again."""
    page.wait_for_function(
        "v => Number(document.body.dataset.version) > v && document.body.dataset.busy === 'false'",
        arg=before)
    error = page.text_content("#error")
    assert error == "", error


def version(page: Page) -> int:
    return int(page.get_attribute("body", "data-version") or "0")


def say(page: Page, text: str) -> None:
    before = version(page)
    page.fill("#message", text)
    page.click("#send")
    settle(page, before)


def shown(page: Page) -> list[str]:
    return [li.get_attribute("data-item-id") or ""
            for li in page.query_selector_all("#items li[data-item-id]")]


def chips(page: Page) -> set[tuple[str, str]]:
    return {(c.get_attribute("data-field") or "", c.get_attribute("data-value") or "")
            for c in page.query_selector_all("#chips span.chip")}


def matches_service(page: Page, service: str) -> dict[str, Any]:
    """The page shows the session as the service holds it: list, reply, chips, status."""
    session_id = page.get_attribute("body", "data-session-id") or ""
    view: dict[str, Any] = _get(f"{service}/v1/sessions/{session_id}")
    assert shown(page) == [i["item_id"] for i in view["items"]]
    assert page.text_content("#reply") == (view["reply"] or "")
    assert chips(page) == {(c["field"], c["value"]) for c in view["profile"]["chips"]}
    status = f"degraded: {view['degraded_reason']}" if view["degraded"] else ""
    assert page.text_content("#status") == status
    texts = page.locator("#items li .explanation").all_inner_texts()
    assert len(texts) == len(view["items"]) and all(t.strip() for t in texts)
    return view


# ---- the tests ---------------------------------------------------------------------------

def test_two_turns_seen_and_a_removed_chip(page: Page, service: str, horror: set[str],
                                           tmp_path: Path) -> None:
    say(page, "I loved Star Wars")
    first = shown(page)
    assert first and "50" not in first  # 50: Star Wars (1977), named, so never recommended
    assert ("liked", "50") in chips(page)
    assert page.locator(".msg.user .text").all_inner_texts() == ["I loved Star Wars"]
    matches_service(page, service)

    say(page, "something funnier, no horror")
    second = shown(page)
    assert second and not set(second) & horror and "50" not in second
    assert ("exclude_genres", "Horror") in chips(page)
    assert len(page.locator("#messages li").all()) == 4
    matches_service(page, service)
    page.screenshot(path=str(tmp_path / "chat-page.png"))
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT)

    gone = second[0]  # the top pick: the one most likely to come back if "seen" were lost
    before = version(page)
    page.click(f'#items li[data-item-id="{gone}"] button[data-action="seen"]')
    settle(page, before)
    lists = [shown(page)]
    assert lists[0] and gone not in lists[0]
    assert ("seen", gone) in chips(page)
    matches_service(page, service)

    say(page, "more like Star Wars, with action")
    lists.append(shown(page))

    before = version(page)
    page.click('#chips span.chip[data-field="exclude_genres"][data-value="Horror"] button.remove')
    settle(page, before)
    assert ("exclude_genres", "Horror") not in chips(page)
    assert ("liked", "50") in chips(page) and ("seen", gone) in chips(page)
    lists.append(shown(page))
    matches_service(page, service)

    assert all(ids and gone not in ids for ids in lists), lists


def test_a_reload_keeps_the_conversation_and_new_starts_afresh(page: Page, service: str) -> None:
    say(page, "I loved Toy Story")
    items, replies = shown(page), page.text_content("#reply")
    assert items and "1" not in items  # 1: Toy Story (1995)

    page.reload()
    settle(page, 0)
    assert shown(page) == items and page.text_content("#reply") == replies
    assert page.locator(".msg.user .text").all_inner_texts() == ["I loved Toy Story"]
    matches_service(page, service)

    page.click("#new-session")
    assert shown(page) == [] and chips(page) == set()
    assert page.text_content("#reply") == "" and page.locator("#messages li").count() == 0


def test_the_page_asks_for_the_key_and_sends_it(browser: Browser, keyed_service: str) -> None:
    """Probe case 5: with --api-key the page sent no key, so every turn was a 401. Also
    case 11: the page comes with a content security policy and is never framed."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(STEP_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    response = page.goto(f"{keyed_service}/")
    assert response is not None
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert page.is_hidden("#key-form")
    page.fill("#message", "I loved Star Wars")
    page.click("#send")
    page.wait_for_selector("#key-form", state="visible")
    assert "API key" in (page.text_content("#error") or "")
    page.fill("#api-key", API_KEY)
    page.click("#key-save")
    assert page.is_hidden("#key-form")
    say(page, "I loved Star Wars")  # settle() checks the page shows no error
    assert shown(page) and "50" not in shown(page)
    context.close()
    assert not errors, f"the page threw: {errors}"
