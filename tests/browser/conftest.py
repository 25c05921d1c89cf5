"""Browser tests: real Chromium (Debian's /usr/bin/chromium) driving the real platform.

Logins are rate limited per address (10 a minute), so the admin signs in through
the login page once per session and every test gets a fresh browser context
with that session's cookies.
"""

from __future__ import annotations

import io
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from shared.generator import generate_events, write_events
from tests.e2e.platform import Platform
from tests.helpers import wait_until

CHROMIUM = os.environ.get("LOGWARDEN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
EXPECT_TIMEOUT_MS = 15_000

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@dataclass
class Guard:
    """What a page did that it must never do: dialogs (XSS), CSP violations, uncaught errors."""

    dialogs: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.csp_violations.append(message.text)

    def on_page_error(self, error: Any) -> None:
        self.page_errors.append(str(error))

    def watch(self, page: Page) -> None:
        page.on("dialog", self.on_dialog)
        page.on("console", self.on_console)
        page.on("pageerror", self.on_page_error)


@dataclass
class BrowserSession:
    """A browser context for one test, its first page and the guard watching every page."""

    context: BrowserContext
    page: Page
    guard: Guard
    base_url: str

    def new_page(self) -> Page:
        page = self.context.new_page()
        self.guard.watch(page)
        return page

    def csrf(self) -> str:
        for cookie in self.context.cookies():
            if cookie["name"] == "logwarden_csrf":
                return cookie["value"]
        return ""


def screenshot(page: Page, name: str) -> Path:
    """Save a screenshot of the viewport to test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    page.screenshot(path=str(path))
    return path


def login_via_form(page: Page, username: str, password: str) -> None:
    """Fill and submit the login form (the page must be on /login)."""
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("#login-submit").click()


# Package scope, not session: sync Playwright keeps an event loop running in this
# thread, which the async tests collected after this package cannot share.
@pytest.fixture(scope="package")
def playwright_instance() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="session")
def api(platform: Platform) -> Iterator[httpx.Client]:
    """A session-wide admin API client (one login: logins are rate limited)."""
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        response = client.post(
            "/api/auth/login", json={"username": platform.admin_username, "password": platform.admin_password}
        )
        assert response.status_code == 200, response.text
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        yield client


@pytest.fixture(scope="package")
def admin_state(browser: Browser, platform: Platform) -> dict[str, Any]:
    """The admin's signed-in browser storage, from one login through the form."""
    context = browser.new_context(base_url=platform.url, viewport=VIEWPORT)  # type: ignore[arg-type]
    try:
        page = context.new_page()
        page.goto("/login")
        login_via_form(page, platform.admin_username, platform.admin_password)
        page.wait_for_url(re.compile("^" + re.escape(f"{platform.url}/") + r"(\?.*)?$"), timeout=EXPECT_TIMEOUT_MS)
        state: dict[str, Any] = dict(context.storage_state())
        return state
    finally:
        context.close()


def _session(
    browser: Browser, platform: Platform, request: pytest.FixtureRequest, storage_state: dict[str, Any] | None
) -> Iterator[BrowserSession]:
    context = browser.new_context(
        base_url=platform.url,
        viewport=VIEWPORT,
        storage_state=storage_state,  # type: ignore[arg-type]
    )
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    guard = Guard()
    page = context.new_page()
    guard.watch(page)
    session = BrowserSession(context, page, guard, platform.url)
    try:
        yield session
        with_pages = [p for p in context.pages if not p.is_closed()]
        if with_pages:
            screenshot(with_pages[-1], request.node.name)
        assert not guard.dialogs, f"a dialog opened: {guard.dialogs}"
        assert not guard.csp_violations, f"CSP violations: {guard.csp_violations}"
        assert not guard.page_errors, f"uncaught page errors: {guard.page_errors}"
    finally:
        context.close()


@pytest.fixture
def admin(
    browser: Browser, platform: Platform, admin_state: dict[str, Any], request: pytest.FixtureRequest
) -> Iterator[BrowserSession]:
    """A fresh browser context signed in as the admin."""
    yield from _session(browser, platform, request, admin_state)


@pytest.fixture
def anonymous(browser: Browser, platform: Platform, request: pytest.FixtureRequest) -> Iterator[BrowserSession]:
    """A fresh browser context with no session."""
    yield from _session(browser, platform, request, None)


# --- data helpers -------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    """A name no other test uses (tests never depend on each other's data)."""
    return f"{prefix}-{secrets.token_hex(4)}"


def generated_csv(count: int, tenant: str, seed: int = 7) -> bytes:
    """``count`` generated events as CSV, all of one tenant."""
    events = [e.model_copy(update={"tenant_id": tenant}) for e in generate_events(count=count, seed=seed)]
    buffer = io.BytesIO()
    write_events(events, buffer, "csv")
    return buffer.getvalue()


def post_logs(api: httpx.Client, events: list[dict[str, Any]]) -> None:
    """POST /api/logs and require every event to be accepted."""
    response = api.post("/api/logs", json=events)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(events), response.text


def wait_searchable(api: httpx.Client, count: int, timeout: float = 30, **params: str) -> None:
    """Poll the search API until ``count`` events match ``params``."""

    def ready() -> bool:
        response = api.get("/api/search", params={**params, "limit": 1})
        return response.status_code == 200 and response.json()["total"] >= count

    wait_until(ready, timeout=timeout, interval=0.25, what=f"{count} events matching {params}")


def upload_file(api: httpx.Client, name: str, content: bytes) -> dict[str, Any]:
    """Upload through the API and wait until the file is indexed."""
    response = api.post("/api/upload", files={"file": (name, content, "text/csv")})
    assert response.status_code == 202, response.text
    file_id = response.json()["files"][0]["id"]

    def indexed() -> dict[str, Any]:
        body: dict[str, Any] = api.get(f"/api/files/{file_id}").json()
        assert body["status"] != "failed", body
        return body if body["status"] == "indexed" else {}

    result: dict[str, Any] = wait_until(indexed, timeout=60, interval=0.25, what=f"file {name} indexed")
    return result
