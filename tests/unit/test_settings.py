"""Settings: required secrets, unsafe values refused, derived URLs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import Settings

TOKEN = "t" * 40


def test_internal_token_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOGWARDEN_INTERNAL_TOKEN", raising=False)
    with pytest.raises(ValidationError, match="internal_token"):
        Settings()


def test_short_internal_token_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(internal_token="short")


@pytest.mark.parametrize("password", ["admin123", "password", "changeme", "short"])
def test_weak_admin_passwords_are_refused(password: str) -> None:
    with pytest.raises(ValidationError, match="admin_password"):
        Settings(internal_token=TOKEN, admin_password=password)


def test_environment_prefix_and_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGWARDEN_INTERNAL_TOKEN", TOKEN)
    monkeypatch.setenv("LOGWARDEN_GATEWAY_PORT", "9100")
    monkeypatch.setenv("LOGWARDEN_ALLOWED_ORIGINS", '["https://logs.example.com/"]')
    settings = Settings()
    assert settings.gateway_port == 9100
    assert settings.origins == ["http://127.0.0.1:8000", "https://logs.example.com"]


def test_backend_urls_are_required_for_scale_out() -> None:
    with pytest.raises(ValidationError, match="ELASTICSEARCH_URL"):
        Settings(internal_token=TOKEN, log_store="elasticsearch")
    with pytest.raises(ValidationError, match="MONGODB_URL"):
        Settings(internal_token=TOKEN, meta_store="mongodb")


def test_service_urls_and_redis_socket(tmp_path) -> None:
    settings = Settings(internal_token=TOKEN, data_dir=tmp_path, bind_host="0.0.0.0", query_port=9002)
    assert settings.service_url("query") == "http://127.0.0.1:9002"
    assert settings.effective_redis_url == f"unix://{tmp_path.resolve()}/redis/redis.sock"
    explicit = Settings(internal_token=TOKEN, ingest_url="http://ingest:8001/")
    assert explicit.service_url("ingest") == "http://ingest:8001"


def test_secure_cookies_follow_public_url() -> None:
    assert not Settings(internal_token=TOKEN).secure_cookies
    assert Settings(internal_token=TOKEN, public_url="https://logs.example.com").secure_cookies
    with pytest.raises(ValidationError):
        Settings(internal_token=TOKEN, public_url="logs.example.com")
