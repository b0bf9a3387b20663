"""Users and tokens, in and out."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from kokyaku.kit.normalize import normalize_email

Role = Literal["admin", "manager", "sales", "support", "marketing", "viewer"]
Email = Annotated[str, Field(max_length=254), AfterValidator(normalize_email)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    name: Annotated[str, Field(min_length=1, max_length=100)]
    role: Role
    password: Annotated[str, Field(min_length=10, max_length=200)]
    locale: Literal["ja", "en"] | None = None


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    role: Role | None = None
    password: Annotated[str, Field(min_length=10, max_length=200)] | None = None
    locale: Literal["ja", "en"] | None = None
    is_active: bool | None = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    email: str
    name: str
    role: str
    locale: str | None
    is_active: bool
    created_at: datetime


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=100)] = "api"


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str
