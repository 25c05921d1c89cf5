"""The running platform shared by the end-to-end tests of one session."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.platform import Platform, run_platform


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One `logwarden up` for the whole session (tests must not depend on each other's data)."""
    with run_platform(tmp_path_factory.mktemp("platform")) as running:
        yield running


@pytest.fixture
def admin_client(platform: Platform) -> Iterator[httpx.Client]:
    """An httpx client logged in as the first admin, sending the CSRF header."""
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        response = client.post(
            "/api/auth/login", json={"username": platform.admin_username, "password": platform.admin_password}
        )
        assert response.status_code == 200, response.text
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        yield client
