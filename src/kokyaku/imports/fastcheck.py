"""A fast check of a pydantic model's fields for bulk imports, built from the model's own rules.

`CustomerUpdate.model_validate` costs ~15 us a row, a fifth of an import's parsing. For the field shapes
an import row uses (optional strings with a length limit and after-validators, literals, bounded integers,
dates with field validators, lists of such strings), `FastCheck` reads the rules from the model (its
annotations, constraints, after-validators and field validators) once, and applies them directly. It
answers only when every field passes: then its values are exactly the model's; for anything else (a field
it has no rule for, any failure) it answers None, and the caller validates the row with the model itself,
which gives the usual field-named messages. tests/imports/test_fastcheck.py compares both on generated
payloads.
"""

import inspect
import types
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic.functional_validators import AfterValidator

Check = Callable[[Any], Any]  # returns the value, or raises ValueError
_MISSING = object()
# Values already checked, per string field: names, kana, prefectures and tags repeat across a file. (The
# schema's string validators are pure functions of the value: trimming, width folding, patterns.)
_MEMO = 50_000


class _Unsupported(Exception):
    """A field shape this module does not reproduce: that field always goes to the model."""


def _constraints(meta: list[Any]) -> tuple[dict[str, int], list[Callable[[Any], Any]]]:
    bounds: dict[str, int] = {}
    after: list[Callable[[Any], Any]] = []
    for m in meta:
        if isinstance(m, FieldInfo):
            inner, more = _constraints(list(m.metadata))
            bounds.update(inner)
            after += more
        elif isinstance(m, MaxLen):
            bounds["max_len"] = m.max_length
        elif isinstance(m, MinLen):
            bounds["min_len"] = m.min_length
        elif isinstance(m, Ge):
            bounds["ge"] = int(m.ge)  # type: ignore[call-overload]
        elif isinstance(m, Le):
            bounds["le"] = int(m.le)  # type: ignore[call-overload]
        elif isinstance(m, AfterValidator):
            if len(inspect.signature(m.func).parameters) != 1:  # a validator that wants pydantic's `info`
                raise _Unsupported(repr(m))
            after.append(m.func)  # type: ignore[arg-type]
        else:
            raise _Unsupported(repr(m))
    return bounds, after


def _check_for(annotation: Any, outer: list[Any], str_max: int | None) -> Check:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise _Unsupported(repr(annotation))
        return _check_for(inner[0], outer, str_max)  # None never reaches a check: the importer drops it
    meta = list(outer)
    if origin is Annotated:
        annotation, meta = args[0], meta + list(annotation.__metadata__)
        origin, args = get_origin(annotation), get_args(annotation)
    bounds, after = _constraints(meta)
    if annotation is str:
        low, high = bounds.get("min_len", 0), bounds.get("max_len", str_max)

        memo: dict[str, Any] = {}

        def check_str(value: Any) -> Any:
            if type(value) is not str:
                raise ValueError
            known = memo.get(value, _MISSING)
            if known is not _MISSING:
                return known
            if len(value) < low or (high is not None and len(value) > high):
                raise ValueError
            checked = value
            for fn in after:
                checked = fn(checked)
            if len(memo) < _MEMO:
                memo[value] = checked
            return checked

        return check_str
    if annotation is int and not after:
        ge, le = bounds.get("ge"), bounds.get("le")

        def check_int(value: Any) -> Any:
            if type(value) is not int or (ge is not None and value < ge) or (le is not None and value > le):
                raise ValueError
            return value

        return check_int
    if annotation is date and not bounds and not after:

        def check_date(value: Any) -> Any:
            if type(value) is not date:
                raise ValueError
            return value

        return check_date
    if origin is Literal and not bounds and not after and all(type(a) is str for a in args):
        allowed = frozenset(args)

        def check_literal(value: Any) -> Any:
            if type(value) is not str or value not in allowed:
                raise ValueError
            return value

        return check_literal
    if origin is list and not after and set(bounds) <= {"max_len", "min_len"}:
        item = _check_for(args[0], [], str_max)
        low, high = bounds.get("min_len", 0), bounds.get("max_len")

        def check_list(value: Any) -> Any:
            if type(value) is not list or len(value) < low or (high is not None and len(value) > high):
                raise ValueError
            return [item(v) for v in value]

        return check_list
    raise _Unsupported(repr(annotation))


class FastCheck:
    """The fields of `model` that have a reproducible rule, checked without building the model."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.checks: dict[str, Check] = {}
        str_max = model.model_config.get("str_max_length")
        validators: dict[str, list[Callable[[Any], Any]]] = {}
        decorators = model.__pydantic_decorators__
        supported = not (decorators.model_validators or decorators.root_validators or decorators.validators)
        for dec in decorators.field_validators.values():
            if dec.info.mode != "after":
                supported = False
            for name in dec.info.fields:
                validators.setdefault(name, []).append(dec.func)
        if not supported or model.model_config.get("extra") != "forbid":
            return
        for name, info in model.model_fields.items():
            try:
                check = _check_for(info.annotation, list(info.metadata), str_max)
            except _Unsupported:
                continue
            extra = validators.get(name)
            if extra:
                check = _then(check, extra)
            self.checks[name] = check

    def values(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The validated value of each key of `data` (none of them None), or None: ask the model."""
        checks = self.checks
        out = {}
        try:
            for key, value in data.items():
                out[key] = checks[key](value)
        except Exception:  # noqa: BLE001 - whatever it is, the model itself will say
            return None
        return out


def _then(check: Check, after: list[Callable[[Any], Any]]) -> Check:
    def checked(value: Any) -> Any:
        value = check(value)
        for fn in after:
            value = fn(value)
        return value

    return checked
