"""Settings, read from the environment (prefix KOKYAKU_) and an optional .env file."""

from functools import lru_cache
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KOKYAKU_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///kokyaku.db"
    secret_key: str = DEV_SECRET
    timezone: str = "Asia/Tokyo"
    default_locale: Literal["ja", "en"] = "ja"
    default_currency: str = "JPY"
    # argon2 cost: the defaults are OWASP's minimum; tests lower them to stay fast.
    argon2_time_cost: int = 2
    argon2_memory_cost: int = 19456
    session_max_age: int = 60 * 60 * 12
    login_max_failures: int = 5
    login_window_seconds: int = 15 * 60
    secure_cookies: bool = False
    sqlite_busy_timeout_ms: int = 10000
    run_worker_in_process: bool = True
    # CSV imports: uploads are stored under data_dir/uploads; the upload page refuses bigger files.
    data_dir: str = "data"
    import_max_upload_mb: int = 200
    # Lifecycle stages (segments/lifecycle.py explains each threshold).
    lifecycle_new_days: int = 90
    lifecycle_loyal_min_orders: int = 5
    lifecycle_loyal_recent_days: int = 180
    lifecycle_at_risk_multiple: float = 2.0
    lifecycle_at_risk_min_days: int = 30
    lifecycle_churn_days: int = 365
    lifecycle_churn_multiple: float = 4.0
    lifecycle_won_back_days: int = 90
    lifecycle_alive_threshold: float = 0.3
    # Outgoing mail (kokyaku/mail): an empty host turns email off. smtp_tls: none | starttls | ssl.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_sender: str = "Kokyaku <no-reply@localhost>"
    smtp_tls: Literal["none", "starttls", "ssl"] = "starttls"
    smtp_timeout_seconds: float = 10.0
    # Feedback: the address links in emails point to (e.g. https://crm.example.jp; empty: the request's),
    # personal survey links' default lifetime, the public link's submissions per address and window, and
    # follow-ups (default owner's user id for customers without one, days until due).
    public_url: str = ""
    survey_link_days: int = 30
    survey_public_max_submits: int = 20
    survey_public_window_seconds: int = 600
    followup_default_owner_id: int | None = None
    followup_due_days: int = 3

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> "Settings":
        if self.environment == "production" and self.secret_key == DEV_SECRET:
            raise ValueError("KOKYAKU_SECRET_KEY must be set to a random value in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
