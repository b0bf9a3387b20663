"""Keyset pagination: an opaque cursor that carries the last row's sort key."""

import base64
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kokyaku.errors import KokyakuError

T = TypeVar("T")


class BadCursor(KokyakuError):
    code = "bad_cursor"
    status = 400
    message = "The page cursor is not valid."


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor(field="cursor") from exc
    if not isinstance(values, list):
        raise BadCursor(field="cursor")
    return values


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
