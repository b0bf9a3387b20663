"""Errors with a stable code and HTTP status, rendered by one handler for the API and the pages."""

from typing import Any


class KokyakuError(Exception):
    """Base of every error a user may see; `message` is an English gettext msgid with {placeholders}."""

    code = "error"
    status = 400
    message = "Something went wrong."

    def __init__(self, message: str | None = None, *, field: str | None = None, **params: Any) -> None:
        self.message = message or self.message
        self.field = field
        self.params = params
        super().__init__(self.message.format(**params) if params else self.message)

    def detail(self) -> Any:
        text = self.message.format(**self.params) if self.params else self.message
        if self.field:
            return [{"field": self.field, "message": text}]
        return text


class NotFound(KokyakuError):
    code = "not_found"
    status = 404
    message = "Not found."


class ValidationFailed(KokyakuError):
    """Bad input that pydantic cannot see: carries a list of (field, message) problems."""

    code = "invalid"
    status = 422
    message = "The input is not valid."

    def __init__(self, problems: list[tuple[str, str, dict[str, Any]]]) -> None:
        self.problems = problems
        super().__init__()

    def detail(self) -> Any:
        return [{"field": f, "message": m.format(**p) if p else m} for f, m, p in self.problems]


class Conflict(KokyakuError):
    code = "conflict"
    status = 409
    message = "This conflicts with existing data."


class DatabaseBusy(KokyakuError):
    """Another writer held the database (SQLite has one) for longer than the busy timeout: nothing was
    written, and the same request may simply be sent again."""

    code = "database_busy"
    status = 503
    message = "The database is busy. Nothing was saved; please try again in a moment."


class PermissionDenied(KokyakuError):
    code = "forbidden"
    status = 403
    message = "You do not have permission to do this."


class NotAuthenticated(KokyakuError):
    code = "not_authenticated"
    status = 401
    message = "Please log in."


class TooManyAttempts(KokyakuError):
    code = "too_many_attempts"
    status = 429
    message = "Too many failed attempts. Try again in {minutes} minutes."


class CsrfFailed(KokyakuError):
    code = "csrf_failed"
    status = 403
    message = "The form has expired. Reload the page and try again."
