"""Process settings, read once from the environment (prefix ``GAAS_``)."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

DEFAULT_APP_ROLE = "gaas_app"


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "gaas"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GAAS_", extra="ignore")

    # Owner role: runs migrations. None means "use the embedded PostgreSQL in data_dir".
    database_url: str | None = None
    # Application role: what serve/worker/CLI connect as. Derived when not given.
    app_database_url: str | None = None
    data_dir: Path = Field(default_factory=_default_data_dir)

    admin_password: str | None = None
    admin_email: str = "admin@example.org"
    secret_key: str | None = None  # pepper for API-token hashes; kept in data_dir when not set

    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    login_max_failures: int = Field(default=5, ge=1)
    lockout_minutes: int = Field(default=15, ge=1)
    # Failed logins from one client address (any accounts) before it must wait, and the window.
    login_address_max_failures: int = Field(default=20, ge=1)
    login_address_window_minutes: int = Field(default=15, ge=1)
    session_token_hours: int = Field(default=12, ge=1)
    page_size_default: int = 50
    page_size_max: int = 500
    db_pool_size: int = 10
    db_max_overflow: int = 10
    # False behind PgBouncer in transaction mode older than 1.21 (no prepared statement tracking).
    db_prepared_statements: bool = True
    # A streaming replica that reports and search read from (the application role's credentials).
    database_replica_url: str | None = None
    audit_partitions_ahead: int = 12
    # Impact analysis keeps an in-memory copy of the CMDB graph once it has this many CIs.
    impact_graph_min_cis: int = 100_000
    # A resolved incident may be reopened within this many days of its resolution.
    incident_reopen_days: int = Field(default=7, ge=0)
    # The currency of services' allocated (annual PPT) costs; cost entries carry their own.
    allocation_currency: str = "USD"
    # Web interface: mark its cookies Secure always (behind a TLS-terminating proxy that does not
    # pass X-Forwarded-Proto), never, or (unset) when the request itself came over HTTPS.
    ui_secure_cookies: bool | None = None

    # E-mail notifications over SMTP; no host means in-app notifications only.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_tls: Literal["none", "starttls", "ssl"] = "none"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "gaas@localhost"
    smtp_timeout_seconds: float = Field(default=10, gt=0)
    email_max_attempts: int = Field(default=8, ge=1)
    email_retry_base_seconds: float = Field(default=30, ge=0)
    # Webhooks: per-request timeout, retries with exponential backoff, automatic disabling after
    # this many failed attempts in a row, and networks never called (cloud metadata by default).
    webhook_timeout_seconds: float = Field(default=10, gt=0)
    webhook_max_attempts: int = Field(default=10, ge=1)
    webhook_retry_base_seconds: float = Field(default=10, ge=0)
    webhook_retry_max_seconds: float = Field(default=3600, ge=0)
    webhook_disable_after: int = Field(default=20, ge=1)
    webhook_blocked_networks: str = "169.254.0.0/16,fe80::/10"
    # The worker: threads per process, idle poll interval (NOTIFY wakes it sooner), outbox retention.
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    worker_poll_seconds: float = Field(default=2, gt=0)
    outbox_retention_days: int = Field(default=7, ge=1)
    # Required as a bearer token on /metrics when set (its figures name domains).
    metrics_token: str | None = None
    # "json" (one JSON object a line, with the request id) or "console" (for people).
    log_format: str = "json"

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def _kept_secret(self, filename: str) -> str:
        """A random secret generated once and kept (0600) in the data directory."""
        path = self.ensure_data_dir() / filename
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    @property
    def token_pepper(self) -> str:
        return self.secret_key or self._kept_secret("secret_key")

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def app_role(self) -> str:
        if self.app_database_url:
            return make_url(self.app_database_url).username or DEFAULT_APP_ROLE
        return DEFAULT_APP_ROLE

    def app_role_password(self) -> str:
        if self.app_database_url:
            return make_url(self.app_database_url).password or ""
        return self._kept_secret("app_role_password")

    def owner_url(self) -> URL:
        if self.database_url is None:
            from gaas.core.embedded import embedded_owner_url

            return embedded_owner_url(self)
        return as_psycopg_url(self.database_url)

    def replica_url(self) -> URL | None:
        return as_psycopg_url(self.database_replica_url) if self.database_replica_url else None

    def app_url(self) -> URL:
        if self.app_database_url:
            return as_psycopg_url(self.app_database_url)
        return self.owner_url().set(username=self.app_role, password=self.app_role_password())


def as_psycopg_url(url: str | URL) -> URL:
    """Accept postgres://, postgresql:// or postgresql+psycopg:// and use psycopg 3."""
    parsed = make_url(str(url).replace("postgres://", "postgresql://", 1)) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql+psycopg")


@lru_cache
def get_settings() -> Settings:
    return Settings()
