"""Turning posted forms into pydantic models, and validation errors into messages at the field."""

from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from kokyaku.errors import KokyakuError, ValidationFailed
from kokyaku.i18n import gettext
from kokyaku.web.render import validation_problems

FieldErrors = dict[str, str]


def form_dict(
    form: FormData, *, lists: tuple[str, ...] = (), skip: tuple[str, ...] = ("csrf_token",)
) -> dict[str, Any]:
    """Form fields as a dict: empty means None; list fields split on commas and new lines; custom.x nested."""
    data: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for key, value in form.multi_items():
        if key in skip or not isinstance(value, str):
            continue
        value = value.strip()
        if key.startswith("custom."):
            custom[key.removeprefix("custom.")] = value or None
        elif key in lists:
            parts = [p.strip() for p in value.replace("、", ",").replace("\n", ",").split(",")]
            data[key] = [p for p in parts if p]
        else:
            data[key] = value or None
    if custom:
        data["custom"] = custom
    return data


def parse(model: type[BaseModel], data: dict[str, Any], locale: str) -> tuple[Any, FieldErrors]:
    try:
        return model.model_validate(data), {}
    except ValidationError as exc:
        return None, field_errors(validation_problems(exc.errors()), locale)


def field_errors(problems: list[tuple[str, str, dict[str, Any]]], locale: str) -> FieldErrors:
    """First message per top-level field ("emails.1" is shown at "emails"), in the user's language."""
    errors: FieldErrors = {}
    for field, message, params in problems:
        top = field if field.startswith("custom.") else field.split(".")[0]
        errors.setdefault(top, gettext(locale, message, **params))
    return errors


def errors_of(exc: KokyakuError, locale: str) -> FieldErrors:
    if isinstance(exc, ValidationFailed):
        return field_errors(exc.problems, locale)
    return field_errors([(exc.field or "__all__", exc.message, exc.params)], locale)
