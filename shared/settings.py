"""The one settings class of logwarden (environment variables prefixed ``LOGWARDEN_``).

Every field is documented in README.md ("Settings"); keep the two in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Passwords an operator might reach for first; refusing them makes "no default
# password" hold even when someone copies a tutorial.
_WEAK_PASSWORDS = frozenset(
    {"admin", "admin123", "password", "password123", "changeme", "letmein", "logwarden", "secret"}
)
_MIN_SECRET_LENGTH = 32
_MIN_PASSWORD_LENGTH = 12

SERVICE_NAMES = ("gateway", "ingest", "query", "realtime")


class Settings(BaseSettings):
    """Configuration shared by every service, the CLI and the tests."""

    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_", extra="ignore", frozen=True)

    # --- where things live -------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Embedded-mode data: tantivy indices, SQLite, Redis.")
    redis_url: str | None = Field(
        None, description="Redis URL; unset means `logwarden up` starts one on a unix socket in data_dir."
    )
    log_store: Literal["tantivy", "elasticsearch"] = "tantivy"
    meta_store: Literal["sqlite", "mongodb"] = "sqlite"
    elasticsearch_url: str | None = None
    elasticsearch_api_key: SecretStr | None = None
    elasticsearch_username: str | None = None
    elasticsearch_password: SecretStr | None = None
    elasticsearch_ca_certs: Path | None = None
    elasticsearch_index_prefix: str = "logwarden-logs"
    mongodb_url: SecretStr | None = None
    mongodb_database: str = "logwarden"

    # --- network -------------------------------------------------------------
    bind_host: str = Field("127.0.0.1", description="Interface the four services listen on.")
    gateway_port: int = Field(8000, ge=1, le=65535)
    ingest_port: int = Field(8001, ge=1, le=65535)
    query_port: int = Field(8002, ge=1, le=65535)
    realtime_port: int = Field(8003, ge=1, le=65535)
    tcp_port: int = Field(5170, ge=0, le=65535, description="Newline-delimited JSON over TCP; 0 disables.")
    syslog_port: int = Field(5514, ge=0, le=65535, description="Syslog over TCP and UDP; 0 disables.")
    ingest_url: str | None = Field(None, description="Internal URL of ingest; derived from the port if unset.")
    query_url: str | None = None
    realtime_url: str | None = None
    public_url: str = Field("http://127.0.0.1:8000", description="URL users reach the gateway at.")
    allowed_origins: list[str] = Field(
        default_factory=list, description="Extra origins allowed for cookies and Socket.IO."
    )

    # --- secrets -------------------------------------------------------------
    internal_token: SecretStr = Field(
        ..., description="Shared secret the gateway sends to the services; `logwarden up` generates one."
    )
    admin_username: str | None = None
    admin_password: SecretStr | None = None

    # --- auth ------------------------------------------------------------------
    session_idle_minutes: int = Field(120, ge=1)
    session_max_hours: int = Field(24, ge=1)
    login_attempts_per_minute: int = Field(10, ge=1)

    # --- telemetry ---------------------------------------------------------------
    otlp_endpoint: str | None = Field(None, description="OTLP/HTTP endpoint; OTEL_EXPORTER_OTLP_ENDPOINT also works.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    jaeger_ui_url: str | None = Field(None, description="Base URL of the Jaeger UI for 'view trace' links.")

    # --- bus -------------------------------------------------------------------
    stream_maxlen: int = Field(1_000_000, ge=1000, description="Approximate cap on stream entries kept.")
    consumer_group: str = "indexer"
    claim_idle_ms: int = Field(30_000, ge=100, description="Pending entries idle this long are reclaimed.")
    max_deliveries: int = Field(5, ge=1, description="Deliveries before an entry is dead-lettered.")
    backlog_limit: int = Field(50_000, ge=1, description="Unacknowledged entries above which inputs push back.")
    publish_batch_size: int = Field(500, ge=1, le=10_000)

    # --- ingest limits -----------------------------------------------------------
    max_upload_bytes: int = Field(1 << 30, ge=1024)
    max_decompressed_bytes: int = Field(10 << 30, ge=1024)
    max_gzip_ratio: int = Field(100, ge=2)
    max_line_bytes: int = Field(64 << 10, ge=256)
    max_json_depth: int = Field(32, ge=2)
    max_fields_per_event: int = Field(256, ge=8)
    max_request_bytes: int = Field(32 << 20, ge=1024, description="Body limit of /api/logs, /es and /v1/logs.")
    naive_timezone: str = Field("UTC", description="Zone assumed for timestamps that carry none.")

    # --- query -------------------------------------------------------------------
    max_query_length: int = Field(4096, ge=64)
    max_query_terms: int = Field(256, ge=4)
    max_query_depth: int = Field(32, ge=2)
    stats_cache_seconds: int = Field(60, ge=0)
    search_cache_seconds: int = Field(300, ge=0)
    retention_days: int = Field(30, ge=1)

    # --- live tail -----------------------------------------------------------------
    live_buffer_size: int = Field(5000, ge=200)
    live_client_queue: int = Field(2000, ge=10)
    live_flush_ms: int = Field(100, ge=10)
    live_batch_size: int = Field(200, ge=1)

    @field_validator("internal_token")
    @classmethod
    def _internal_token_strong(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < _MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {_MIN_SECRET_LENGTH} characters (try `openssl rand -hex 32`)")
        return value

    @field_validator("admin_password")
    @classmethod
    def _admin_password_strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if len(secret) < _MIN_PASSWORD_LENGTH or secret.lower() in _WEAK_PASSWORDS:
            raise ValueError(f"must be at least {_MIN_PASSWORD_LENGTH} characters and not a common password")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url_absolute(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _backends_configured(self) -> Settings:
        if self.log_store == "elasticsearch" and not self.elasticsearch_url:
            raise ValueError("log_store=elasticsearch needs LOGWARDEN_ELASTICSEARCH_URL")
        if self.meta_store == "mongodb" and not self.mongodb_url:
            raise ValueError("meta_store=mongodb needs LOGWARDEN_MONGODB_URL")
        return self

    # --- derived values ------------------------------------------------------------
    def service_url(self, name: str) -> str:
        """Internal base URL of one of the four services."""
        explicit = {"ingest": self.ingest_url, "query": self.query_url, "realtime": self.realtime_url}.get(name)
        if explicit:
            return explicit.rstrip("/")
        host = "127.0.0.1" if self.bind_host in {"0.0.0.0", "::", ""} else self.bind_host
        return f"http://{host}:{self.service_port(name)}"

    def service_port(self, name: str) -> int:
        """Listening port of one of the four services."""
        return {
            "gateway": self.gateway_port,
            "ingest": self.ingest_port,
            "query": self.query_port,
            "realtime": self.realtime_port,
        }[name]

    @property
    def secure_cookies(self) -> bool:
        """Cookies get the Secure flag when users reach us over https."""
        return self.public_url.startswith("https://")

    @property
    def origins(self) -> list[str]:
        """Origins trusted for cookie-authenticated writes and Socket.IO."""
        parts = urlsplit(self.public_url)
        own = f"{parts.scheme}://{parts.netloc}"
        return [own, *[o.rstrip("/") for o in self.allowed_origins if o.rstrip("/") != own]]

    @property
    def redis_socket_path(self) -> Path:
        """Unix socket of the Redis that `logwarden up` starts for the embedded mode."""
        return self.data_dir.resolve() / "redis" / "redis.sock"

    @property
    def effective_redis_url(self) -> str:
        """The Redis URL services connect to."""
        return self.redis_url or f"unix://{self.redis_socket_path}"
