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
