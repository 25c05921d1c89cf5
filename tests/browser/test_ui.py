"""The web UI in real Chromium against the real platform (`logwarden up`)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import (
    VIEWPORT,
    BrowserSession,
    generated_csv,
    login_via_form,
    post_logs,
    screenshot,
    unique,
    upload_file,
    wait_searchable,
)
from tests.e2e.platform import Platform

pytestmark = pytest.mark.browser

XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_SCRIPT = "<script>alert(1)</script>"
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event(tenant: str, **fields: Any) -> dict[str, Any]:
    return {"timestamp": _now(), "tenant_id": tenant, "level": "INFO", "service": "web", "message": "ok", **fields}


# --- login ---------------------------------------------------------------------------------------


def test_login_redirects_back_rejects_wrong_password_and_sets_security_headers(
    anonymous: BrowserSession, platform: Platform
) -> None:
    page = anonymous.page
    response = page.goto("/search?q=timeout")
    assert response is not None
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fsearch%3Fq%3Dtimeout$"))
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.headers)
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator(".hint")).to_contain_text("make run")

    login_via_form(page, platform.admin_username, "not-the-password")
    expect(page.locator("#login-error")).to_have_text("Invalid username or password.")
    expect(page).to_have_url(re.compile(r"/login\?"))
    screenshot(page, "page-login")

    login_via_form(page, platform.admin_username, platform.admin_password)
    expect(page).to_have_url(f"{platform.url}/search?q=timeout")
    expect(page.locator("#user-name")).to_have_text(platform.admin_username)


def test_login_next_to_another_site_stays_local(browser: Browser, platform: Platform) -> None:
    context = browser.new_context(base_url=platform.url, viewport=VIEWPORT)  # type: ignore[arg-type]
    try:
        page = context.new_page()
        page.goto("/login?next=//evil.example")
        assert page.locator("#login-form").get_attribute("data-next") == "/"
        login_via_form(page, platform.admin_username, platform.admin_password)
        expect(page).to_have_url(re.compile("^" + re.escape(f"{platform.url}/") + r"(\?.*)?$"))
        assert urlsplit(page.url).hostname == "127.0.0.1"
        # Signed in, the login page itself redirects locally too.
        response = page.goto("/login?next=/%5Cevil.example")
        assert response is not None and urlsplit(response.url).path == "/"
        assert urlsplit(page.url).hostname == "127.0.0.1"
    finally:
        context.close()


# --- upload -------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_upload_a_csv_until_indexed(admin: BrowserSession, api: httpx.Client, tmp_path: Any) -> None:
    tenant = unique("upload")
    path = tmp_path / f"{tenant}.csv"
    path.write_bytes(generated_csv(500, tenant))
    page = admin.page
    page.goto("/upload")
    page.locator("#file-input").set_input_files(str(path))
    item = page.locator(".upload-item", has_text=path.name)
    expect(item).to_be_visible()
    expect(item).to_have_attribute("data-status", "indexed", timeout=90_000)
    expect(item.locator(".upload-counts")).to_have_attribute("data-indexed", "500")
    expect(item.locator(".upload-counts")).to_contain_text("parsed 500")
    expect(item.locator("progress").first).to_have_attribute("value", "100")
    screenshot(page, "page-upload")
    file_id = item.get_attribute("data-file-id")
    assert file_id
    assert api.get("/api/search", params={"tenant_id": tenant, "limit": 1}).json()["total"] == 500
    # The link goes to the search of this file's events.
    item.get_by_role("link", name=re.compile("Search these events")).click()
    expect(page).to_have_url(re.compile(r"/search\?.*source=upload%3A" + re.escape(file_id)))
    expect(page.locator("#result-summary")).to_contain_text("500 results")


# --- dashboard ----------------------------------------------------------------------------------


def _fmt_int(value: int) -> str:
    return f"{value:,}"


def _fmt_percent(value: float) -> str:
    return f"{value * 100:.2f}%"


def _fmt_ms(value: float | None) -> str:
    return "\u2013" if value is None else f"{math.floor(value * 10 + 0.5) / 10:.1f} ms"


@pytest.mark.timeout(180)
def test_dashboard_kpis_equal_the_stats_api(admin: BrowserSession, api: httpx.Client) -> None:
    tenant = unique("dash")
    upload_file(api, f"{tenant}.csv", generated_csv(400, tenant, seed=11))
    page = admin.page
    page.goto(f"/?range=all&tenant_id={tenant}")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")

    # The same filters, through the same browser session.
    stats = page.request.get(f"/api/stats?tenant_id={tenant}").json()
    assert stats["total_logs"] == 400

    def kpi(card: str) -> Any:
        return page.locator(f"#{card} .kpi-value")

    expect(kpi("kpi-total")).to_have_text(_fmt_int(stats["total_logs"]))
    expect(kpi("kpi-error-rate")).to_have_text(_fmt_percent(stats["error_rate"]))
    expect(kpi("kpi-server-error-rate")).to_have_text(_fmt_percent(stats["server_error_rate"]))
    expect(kpi("kpi-avg-rt")).to_have_text(_fmt_ms(stats["avg_response_time_ms"]))
    expect(kpi("kpi-p95-rt")).to_have_text(_fmt_ms(stats["p95_response_time_ms"]))
    expect(kpi("kpi-active-users")).to_have_text(_fmt_int(stats["active_users"]))
    assert float(kpi("kpi-error-rate").get_attribute("data-value") or "nan") == stats["error_rate"]
    assert float(kpi("kpi-avg-rt").get_attribute("data-value") or "nan") == stats["avg_response_time_ms"]

    # Colour thresholds: error rate < 1 % green, < 5 % amber, else red.
    rate = stats["error_rate"]
    expected = "good" if rate < 0.01 else "warn" if rate < 0.05 else "bad"
    expect(page.locator("#kpi-error-rate")).to_have_class(re.compile(rf"\b{expected}\b"))
    p95 = stats["p95_response_time_ms"]
    expected = "good" if p95 < 500 else "warn" if p95 < 1000 else "bad"
    expect(page.locator("#kpi-p95-rt")).to_have_class(re.compile(rf"\b{expected}\b"))

    # Tables and filters in the URL; the empty state stays hidden.
    expect(page.locator("#slowest-body tr")).to_have_count(len(stats["slowest_endpoints"]))
    expect(page.locator("#empty-state")).to_be_hidden()
    assert parse_qs(urlsplit(page.url).query)["tenant_id"] == [tenant]
    screenshot(page, "page-dashboard")

    # A slow endpoint opens the search with its filters.
    first = stats["slowest_endpoints"][0]["endpoint"]
    page.locator("#slowest-body a").first.click()
    expect(page).to_have_url(re.compile(r"/search\?"))
    query = parse_qs(urlsplit(page.url).query)
    assert query["endpoint"] == [first] and query["tenant_id"] == [tenant]


# --- search --------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_search_filter_save_and_restore(admin: BrowserSession, api: httpx.Client) -> None:
    tenant = unique("search")
    events = [
        _event(
            tenant,
            level="ERROR",
            message=f"payment declined for order {i}",
            status_code=502,
            response_time_ms=100.0 + i,
        )
        for i in range(3)
    ]
    events += [
        _event(tenant, level="INFO", message=f"payment accepted for order {i}", status_code=200) for i in range(4)
    ]
    events += [_event(tenant, level="ERROR", message="disk almost full", status_code=500)]
    post_logs(api, events)
    wait_searchable(api, len(events), tenant_id=tenant)

    page = admin.page
    page.goto("/search?range=all")
    page.locator("#q").fill("payment")
    page.locator("#f-tenant_id").fill(tenant)
    page.locator("#search-form button[type=submit]").click()
    expect(page.locator("#result-summary")).to_contain_text("7 results")
    page.locator('input[name="level"][value="ERROR"]').check()
    expect(page.locator("#result-summary")).to_contain_text("3 results")
    rows = page.locator("#results-body tr.hit")
    expect(rows).to_have_count(3)
    expect(rows.locator(".badge")).to_have_text(["ERROR"] * 3)
    expect(rows.first.locator("mark").first).to_have_text(re.compile("payment", re.I))
    query = parse_qs(urlsplit(page.url).query)
    assert query["q"] == ["payment"] and query["level"] == ["ERROR"] and query["tenant_id"] == [tenant]
    export = page.locator("#export-csv").get_attribute("href") or ""
    assert "format=csv" in export and f"tenant_id={tenant}" in export and "q=payment" in export

    # Sorting by response time, ascending on the second click.
    page.locator('button.sort[data-sort="response_time_ms"]').click()
    expect(page).to_have_url(re.compile(r"sort=response_time_ms"))
    page.locator('button.sort[data-sort="response_time_ms"]').click()
    expect(page).to_have_url(re.compile(r"order=asc"))
    expect(rows.first.locator("td").nth(5)).to_have_text("100.0")

    # The detail panel shows the whole event as text.
    rows.first.click()
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#detail-json")).to_contain_text(f'"tenant_id": "{tenant}"')
    page.locator("#detail-close").click()

    name = unique("saved")
    page.locator("#save-name").fill(name)
    page.locator("#save-form button").click()
    saved = page.locator("#saved-list a", has_text=name)
    expect(saved).to_be_visible()
    screenshot(page, "page-search")
    saved_url = page.url

    page.goto("/search?range=all")
    expect(page.locator("#q")).to_have_value("")
    page.locator("#saved-list a", has_text=name).click()
    expect(page.locator("#q")).to_have_value("payment")
    expect(page.locator("#f-tenant_id")).to_have_value(tenant)
    expect(page.locator('input[name="level"][value="ERROR"]')).to_be_checked()
    expect(page.locator("#result-summary")).to_contain_text("3 results")
    assert parse_qs(urlsplit(page.url).query) == parse_qs(urlsplit(saved_url).query)

    # The URL alone restores the state (shareable).
    page.goto(saved_url)
    expect(page.locator("#result-summary")).to_contain_text("3 results")
    expect(page.locator('input[name="level"][value="ERROR"]')).to_be_checked()


def test_search_shows_the_position_of_a_syntax_error(admin: BrowserSession) -> None:
    page = admin.page
    page.goto("/search?range=all")
    page.locator("#q").fill("status_code:>=abc")
    page.locator("#search-form button[type=submit]").click()
    expect(page.locator("#q-error")).to_be_visible()
    response = page.request.get("/api/search", params={"q": "status_code:>=abc"})
    assert response.status == 400
    position = response.json()["error"]["details"]["position"]
    expect(page.locator("#q-error-caret")).to_have_text(" " * position + "^")
    expect(page.locator("#q-error-text")).to_have_text("status_code:>=abc")


# --- live ----------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_live_shows_a_posted_event_within_2_seconds(admin: BrowserSession, api: httpx.Client) -> None:
    service = unique("live")
    page = admin.page
    page.goto("/live")
    page.locator("#live-services").fill(service)
    page.locator("#live-filters button[type=submit]").click()
    expect(page.locator("body")).to_have_attribute("data-subscribed", "true")
    expect(page.locator("#conn")).to_have_class(re.compile(r"\bconnected\b"))

    message = f"live event {unique('m')}"
    post_logs(api, [_event(unique("t"), service=service, level="ERROR", message=message)])
    expect(page.locator("#live-log .live-line", has_text=message)).to_be_visible(timeout=2000)
    screenshot(page, "page-live")

    # Pause holds new events back; resume shows them.
    page.locator("#pause").click()
    held = f"held event {unique('m')}"
    post_logs(api, [_event(unique("t"), service=service, message=held)])
    expect(page.locator("#pause")).to_have_text(re.compile(r"Resume \(1 new\)"), timeout=5000)
    expect(page.locator("#live-log .live-line", has_text=held)).to_have_count(0)
    page.locator("#pause").click()
    expect(page.locator("#live-log .live-line", has_text=held)).to_be_visible()
    page.locator("#clear").click()
    expect(page.locator("#live-log .live-line")).to_have_count(0)


# --- XSS -------------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_hostile_messages_are_shown_as_text_everywhere(admin: BrowserSession, api: httpx.Client) -> None:
    tenant = unique("xss")
    service = unique("xsssvc")
    page = admin.page

    # Live first, so the events arrive over the socket.
    page.goto("/live")
    page.locator("#live-services").fill(service)
    page.locator("#live-filters button[type=submit]").click()
    expect(page.locator("body")).to_have_attribute("data-subscribed", "true")
    hostile = [
        _event(tenant, service=service, level="ERROR", message=XSS_IMG, endpoint='/x"><img src=x>'),
        _event(tenant, service=service, level="CRITICAL", message=XSS_SCRIPT),
    ]
    post_logs(api, hostile)
    for text in (XSS_IMG, XSS_SCRIPT):
        expect(page.locator(".live-message", has_text=text)).to_have_text(text)
    _assert_inert(admin)

    wait_searchable(api, 2, tenant_id=tenant)
    page.goto(f"/search?range=all&tenant_id={tenant}")
    expect(page.locator("#result-summary")).to_contain_text("2 results")
    for text in (XSS_IMG, XSS_SCRIPT):
        expect(page.locator("#results-body .message-cell", has_text=text)).to_have_text(text)
    page.locator("#results-body tr.hit").first.click()
    expect(page.locator("#detail-json")).to_contain_text("<")
    _assert_inert(admin)

    page.goto(f"/?range=all&tenant_id={tenant}")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    for text in (XSS_IMG, XSS_SCRIPT):
        expect(page.locator("#top-errors-body .message-cell", has_text=text)).to_have_text(text)
    _assert_inert(admin)


def _assert_inert(session: BrowserSession) -> None:
    page = session.page
    assert page.locator('img[src="x"]').count() == 0
    assert page.locator("script", has_text="alert(1)").count() == 0
    assert not session.guard.dialogs, session.guard.dialogs


# --- roles --------------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_viewer_cannot_administer(anonymous: BrowserSession, api: httpx.Client, platform: Platform) -> None:
    tenant = unique("viewer")
    stored = upload_file(api, f"{tenant}.csv", generated_csv(20, tenant, seed=3))
    username, password = unique("viewer"), unique("pw") + "-Long-Enough-1"
    created = api.post("/api/users", json={"username": username, "password": password, "role": "viewer"})
    assert created.status_code == 201, created.text

    page = anonymous.page
    page.goto("/login?next=/files")
    login_via_form(page, username, password)
    expect(page).to_have_url(f"{platform.url}/files")
    expect(page.locator("#user-role")).to_have_text("viewer")
    expect(page.locator("nav.nav a", has_text="Admin")).to_have_count(0)
    expect(page.locator("nav.nav a", has_text="Upload")).to_have_count(0)
    row = page.locator(f'#files-body tr[data-file-id="{stored["id"]}"]')
    expect(row).to_be_visible()
    expect(page.locator("#files-body .delete-file")).to_have_count(0)
    expect(page.locator("#files-body button", has_text="Delete")).to_have_count(0)
    screenshot(page, "page-files-viewer")

    response = page.goto("/admin")
    assert response is not None and response.status == 403
    expect(page.locator("#error-page")).to_contain_text("Not allowed")

    denied = page.request.delete(f"/api/files/{stored['id']}", headers={"X-CSRF-Token": anonymous.csrf()})
    assert denied.status == 403, denied.text()
    assert api.get(f"/api/files/{stored['id']}").status_code == 200


# --- files and admin (as admin) -------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_admin_deletes_a_file_with_confirmation(admin: BrowserSession, api: httpx.Client) -> None:
    tenant = unique("files")
    stored = upload_file(api, f"{tenant}.csv", generated_csv(30, tenant, seed=5))
    page = admin.page
    page.goto("/files")
    row = page.locator(f'#files-body tr[data-file-id="{stored["id"]}"]')
    expect(row).to_contain_text("indexed")
    expect(row).to_contain_text(f"{tenant}.csv")
    expect(page.locator("#total-files")).not_to_have_text("\u2013")
    screenshot(page, "page-files")
    delete = row.locator(".delete-file")
    delete.click()
    expect(delete).to_have_text("Confirm delete")
    assert api.get(f"/api/files/{stored['id']}").status_code == 200  # one click does not delete
    delete.click()
    expect(row).to_have_count(0)
    assert api.get(f"/api/files/{stored['id']}").status_code == 404


def test_admin_page_creates_a_key_shown_once(admin: BrowserSession, api: httpx.Client) -> None:
    page = admin.page
    page.goto("/admin")
    expect(page.locator("#users-body")).to_contain_text("admin")
    name = unique("key")
    page.locator('#key-form input[name="name"]').fill(name)
    page.locator('#key-form input[name="tenant_id"]').fill(unique("tenant"))
    page.locator("#key-form button[type=submit]").click()
    expect(page.locator("#key-once")).to_be_visible()
    key = page.locator("#key-value").input_value()
    assert key.startswith("lw_")
    expect(page.locator("#keys-body tr", has_text=name)).to_be_visible()
    # The key works (ingest scope) and is not shown anywhere else.
    assert httpx.get(f"{api.base_url}/es/", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    expect(page.locator("#retention-days")).not_to_have_value("")
    # Shown once: after a reload the key is nowhere on the page.
    page.reload()
    expect(page.locator("#keys-body tr", has_text=name)).to_be_visible()
    expect(page.locator("#key-once")).to_be_hidden()
    assert key not in page.content()
    screenshot(page, "page-admin")


# --- headers and CSP on every page ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/search", "/live", "/upload", "/files", "/admin", "/docs"])
def test_pages_send_security_headers_and_violate_no_csp(admin: BrowserSession, path: str) -> None:
    page = admin.page
    response = page.goto(path)
    assert response is not None and response.status == 200
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (path, name)
    assert response.headers.get("cache-control") == "no-store" or path == "/docs"
    page.wait_for_load_state("networkidle") if path != "/live" else page.wait_for_load_state("load")
    if path == "/docs":
        expect(page.locator("#swagger-ui .info")).to_be_visible()
    else:
        html = response.text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
        assert not re.search(r"\sstyle=|\son[a-z]+=", html), "inline style or event handler"
        assert page.locator('meta[name="csrf-token"]').get_attribute("content") == admin.csrf()
    # The Guard fails the test on any CSP violation, dialog or uncaught error.
    for extra in ("/static/css/app.css", "/api/stats?q=%28"):
        other = page.request.get(extra)
        assert other.headers.get("content-security-policy") == SECURITY_HEADERS["content-security-policy"], extra
