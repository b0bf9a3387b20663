"""The allow-listed rule compiler: segment rules (JSON) -> one SQL WHERE clause over `customers`.

Rules are nested groups::

    {"op": "and", "conditions": [
        {"field": "age", "operator": "between", "value": [30, 39]},
        {"op": "or", "conditions": [
            {"field": "prefecture", "operator": "in", "value": ["東京都", "神奈川県"]},
            {"field": "bought_category", "operator": "any_of", "value": ["ワイン"], "days": 90}]}]}

Only registered fields and their operators exist; every value is validated, normalised and sent as a bound
parameter, so a rule can never inject SQL. Problems are reported by the condition's path
(`conditions.1.conditions.0.value`) with an English msgid the pages translate.

Semantics worth knowing:
- A condition on an empty value (no birthday, no purchase yet) does not match, except the negative operators
  (`ne`, `not_in`, `none_of`, `not_between`), which do match empty values, and `is_empty`.
- Fields read from a per-customer table (customer_metrics, customer_rfm, customer_lifecycle) through a LEFT
  JOIN; a customer without a row counts as the field's `default` (0 orders, stage `lead`).
- Dates and "days since" are in the business time zone (Settings.timezone); every bound is computed here in
  Python, so the SQL compares plain columns with parameters (portable and index-friendly).

Extension point: later domains add fields with `register_field(FieldSpec(...))` (and, if the field lives in a
new per-customer table, `register_join(name, table, onclause)`). See fields.py for the built-in ones.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, FromClause, Select, and_, false, not_, or_, select, true
from sqlalchemy.sql.elements import ColumnElement as _Col

from kokyaku.customers.models import Customer
from kokyaku.errors import ValidationFailed
from kokyaku.kit.normalize import clean_text, fold_width

MAX_DEPTH = 5
MAX_CONDITIONS = 50
MAX_LIST = 500
MAX_TEXT = 200
MAX_DAYS = 36_500
Problem = tuple[str, str, dict[str, Any]]

# operator -> English label (msgid)
OPERATORS: dict[str, str] = {
    "eq": "is",
    "ne": "is not",
    "gt": "more than",
    "gte": "at least",
    "lt": "less than",
    "lte": "at most",
    "between": "between",
    "not_between": "not between",
    "in": "is any of",
    "not_in": "is none of",
    "contains": "contains",
    "starts_with": "starts with",
    "on": "on",
    "before": "before",
    "after": "after",
    "in_last_days": "in the last N days",
    "more_than_days_ago": "more than N days ago",
    "any_of": "any of",
    "all_of": "all of",
    "none_of": "none of",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
}
NEGATIVE = {"ne", "not_in", "not_between", "none_of"}
NO_VALUE = {"is_empty", "is_not_empty"}
LIST_OPS = {"in", "not_in", "any_of", "all_of", "none_of"}
RANGE_OPS = {"between", "not_between"}
DAY_COUNT_OPS = {"in_last_days", "more_than_days_ago"}

# value kinds and the operators each allows by default
NUMBER, ENUM, TEXT, DATE, TAGS = "number", "enum", "text", "date", "tags"
KIND_OPERATORS: dict[str, tuple[str, ...]] = {
    NUMBER: ("eq", "ne", "gt", "gte", "lt", "lte", "between", "not_between", "is_empty", "is_not_empty"),
    ENUM: ("in", "not_in", "eq", "ne", "is_empty", "is_not_empty"),
    TEXT: ("eq", "ne", "in", "not_in", "contains", "starts_with", "is_empty", "is_not_empty"),
    DATE: (
        "on",
        "before",
        "after",
        "between",
        "in_last_days",
        "more_than_days_ago",
        "is_empty",
        "is_not_empty",
    ),  # fmt: skip
    TAGS: ("any_of", "all_of", "none_of", "is_empty", "is_not_empty"),
}


@dataclass(frozen=True)
class Context:
    """What a compilation depends on besides the rules: the clock, the time zone and the custom fields."""

    now: datetime
    tz: ZoneInfo
    # custom field key -> (type, choices)
    custom: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    # testing one customer (the customer page): subqueries become correlated EXISTS, cheap for one id
    correlated: bool = False

    @property
    def today(self) -> date:
        return self.now.astimezone(self.tz).date()

    def day_start(self, day: date) -> datetime:
        """The UTC instant at which the local `day` begins."""
        return datetime.combine(day, time(0), self.tz).astimezone(UTC)


@dataclass
class Condition:
    path: str
    spec: "FieldSpec"
    operator: str
    value: Any
    days: int | None = None


@dataclass
class Group:
    path: str
    op: str
    children: list["Condition | Group"]


Builder = Callable[[Condition, Context], ColumnElement[bool]]


@dataclass(frozen=True)
class FieldSpec:
    """One allowed field: how its values are checked and how a condition on it becomes SQL.

    Either `column` (an SQL expression; the generic comparison builder is used) or `build` (a function from
    the validated condition to a boolean SQL expression) must be given. `joins` names the per-customer tables
    the expression reads (see register_join). `default` is the value of a customer without a row there.
    """

    key: str
    label: str
    category: str  # demographic | psychographic | behavioural
    kind: str  # number | enum | text | date | tags
    operators: tuple[str, ...] = ()
    column: Callable[[Context], Any] | None = None
    build: Builder | None = None
    joins: tuple[str, ...] = ()
    default: Any = None
    integer: bool = False
    minimum: float | None = None
    maximum: float | None = None
    # allowed values of an enum (or tag) field: a function so that it can read the current lists
    choices: Callable[[], Sequence[str]] | None = None
    # msgid when a value is not among the choices
    choice_message: str = "Not one of the allowed values."
    # accepts an optional "days" (purchases / contacts within the last N days)
    days: bool = False
    unit: str | None = None
    # a datetime column (compared with local-day bounds) rather than a date or ISO string column
    datetime_column: bool = True

    def allowed_operators(self) -> tuple[str, ...]:
        return self.operators or KIND_OPERATORS[self.kind]


FIELDS: dict[str, FieldSpec] = {}
JOINS: dict[str, tuple[Any, Callable[[], ColumnElement[bool]]]] = {}


def register_field(spec: FieldSpec) -> None:
    """Allow a field in segment rules (the extension point for CLV, probability alive, NPS, loyalty tier)."""
    if spec.column is None and spec.build is None:
        raise ValueError(f"field {spec.key} needs a column or a builder")
    unknown = [j for j in spec.joins if j not in JOINS]
    if unknown:
        raise ValueError(f"field {spec.key} uses unregistered joins {unknown}")
    FIELDS[spec.key] = spec


def register_join(name: str, target: Any, onclause: Callable[[], ColumnElement[bool]]) -> None:
    """A per-customer table that fields may read through LEFT JOIN target ON onclause()."""
    JOINS[name] = (target, onclause)


# ---------------------------------------------------------------- parsing and validation


class _Parser:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.problems: list[Problem] = []
        self.count = 0

    def problem(self, path: str, message: str, **params: Any) -> None:
        self.problems.append((path, message, params))

    def group(self, raw: Any, path: str, depth: int) -> Group | None:
        where = path or "rules"
        if not isinstance(raw, dict) or "conditions" not in raw:
            self.problem(where, 'The rules must be an object with "op" and "conditions".')
            return None
        for key in raw:
            if key not in ("op", "conditions"):
                self.problem(_join(path, str(key)[:50]), "Unknown key.")
        if depth > MAX_DEPTH:
            self.problem(where, "Groups can be nested at most {max} levels deep.", max=MAX_DEPTH)
            return None
        op = raw.get("op", "and")
        if op not in ("and", "or"):
            self.problem(_join(path, "op"), 'A group must be "and" or "or".')
            op = "and"
        items = raw.get("conditions")
        if not isinstance(items, list) or not items:
            self.problem(_join(path, "conditions"), "A group needs at least one condition.")
            return None
        children: list[Condition | Group] = []
        for i, item in enumerate(items):
            child_path = _join(path, f"conditions.{i}")
            child: Condition | Group | None
            if isinstance(item, dict) and "field" not in item and ("conditions" in item or "op" in item):
                child = self.group(item, child_path, depth + 1)
            else:
                child = self.condition(item, child_path)
            if child is not None:
                children.append(child)
        result = Group(path, op, children)
        if op == "and" and len(children) == len(items):
            self.contradictions(result)
        return result

    def condition(self, raw: Any, path: str) -> Condition | None:
        self.count += 1
        if self.count == MAX_CONDITIONS + 1:
            self.problem(path, "A segment can have at most {max} conditions.", max=MAX_CONDITIONS)
        if not isinstance(raw, dict):
            self.problem(path, "A condition must be an object with a field, or a group with conditions.")
            return None
        for key in raw:
            if key not in ("field", "operator", "value", "days"):
                self.problem(_join(path, str(key)[:50]), "Unknown key.")
        name = raw.get("field")
        if not isinstance(name, str) or not name:
            self.problem(_join(path, "field"), "Choose a field.")
            return None
        spec = resolve_field(name, self.ctx)
        if spec is None:
            self.problem(_join(path, "field"), "Unknown field.")
            return None
        operator = raw.get("operator")
        if not isinstance(operator, str) or operator not in spec.allowed_operators():
            self.problem(_join(path, "operator"), "This operator cannot be used with this field.")
            return None
        value = self.value(spec, operator, raw.get("value"), _join(path, "value"), "value" in raw)
        days = None
        if "days" in raw and raw["days"] is not None:
            if not spec.days:
                self.problem(_join(path, "days"), "This field takes no number of days.")
            else:
                days = self.integer(raw["days"], _join(path, "days"), 1, MAX_DAYS)
        if value is _INVALID:
            return None
        return Condition(path, spec, operator, value, days)

    # -- values

    def value(self, spec: FieldSpec, op: str, raw: Any, path: str, present: bool) -> Any:
        if op in NO_VALUE:
            if present and raw not in (None, "", []):
                self.problem(path, "This operator takes no value.")
                return _INVALID
            return None
        if raw is None or raw == "" or raw == []:
            self.problem(path, "This condition needs a value.")
            return _INVALID
        if op in DAY_COUNT_OPS:
            return self.integer(raw, path, 0, MAX_DAYS)
        if op in RANGE_OPS:
            if not isinstance(raw, list | tuple) or len(raw) != 2:
                self.problem(path, "Give two values: from and to.")
                return _INVALID
            low = self.scalar(spec, raw[0], f"{path}.0")
            high = self.scalar(spec, raw[1], f"{path}.1")
            if low is _INVALID or high is _INVALID:
                return _INVALID
            if low > high:
                self.problem(path, "The lower bound is greater than the upper bound.")
                return _INVALID
            return [low, high]
        if op in LIST_OPS:
            items = raw if isinstance(raw, list | tuple) else [raw]
            if len(items) > MAX_LIST:
                self.problem(path, "At most {max} values.", max=MAX_LIST)
                return _INVALID
            clean = [self.scalar(spec, item, f"{path}.{i}") for i, item in enumerate(items)]
            if any(c is _INVALID for c in clean):
                return _INVALID
            return list(dict.fromkeys(clean))
        if isinstance(raw, list | tuple):
            self.problem(path, "Give one value, not a list.")
            return _INVALID
        return self.scalar(spec, raw, path)

    def scalar(self, spec: FieldSpec, raw: Any, path: str) -> Any:
        if spec.kind == NUMBER:
            return self.number(spec, raw, path)
        if spec.kind == DATE:
            return self.date(raw, path)
        text = self.text(raw, path)
        if text is _INVALID:
            return _INVALID
        if spec.choices is not None and text not in spec.choices():
            self.problem(path, spec.choice_message)
            return _INVALID
        return text

    def number(self, spec: FieldSpec, raw: Any, path: str) -> Any:
        number = _as_number(raw)
        if number is None:
            self.problem(path, "Must be a number.")
            return _INVALID
        if spec.integer:
            if not float(number).is_integer():
                self.problem(path, "Must be a whole number.")
                return _INVALID
            number = int(number)
        if spec.minimum is not None and number < spec.minimum:
            self.problem(path, "Must be at least {min}.", min=_plain(spec.minimum))
            return _INVALID
        if spec.maximum is not None and number > spec.maximum:
            self.problem(path, "Must be at most {max}.", max=_plain(spec.maximum))
            return _INVALID
        return number

    def integer(self, raw: Any, path: str, low: int, high: int) -> Any:
        number = _as_number(raw)
        if number is None or not float(number).is_integer():
            self.problem(path, "Must be a whole number.")
            return _INVALID
        if not low <= number <= high:
            self.problem(path, "Must be a whole number from {min} to {max}.", min=low, max=high)
            return _INVALID
        return int(number)

    def text(self, raw: Any, path: str) -> Any:
        if not isinstance(raw, str):
            self.problem(path, "Must be text.")
            return _INVALID
        text = clean_text(raw)
        if text is None:
            self.problem(path, "This condition needs a value.")
            return _INVALID
        if len(text) > MAX_TEXT:
            self.problem(path, "At most {max} characters.", max=MAX_TEXT)
            return _INVALID
        return text

    def date(self, raw: Any, path: str) -> Any:
        try:
            if not isinstance(raw, str):
                raise ValueError
            value = date.fromisoformat(fold_width(raw).strip())
        except ValueError:
            self.problem(path, "Must be a date (YYYY-MM-DD).")
            return _INVALID
        if value.year < 1800:
            self.problem(path, "Must be a date (YYYY-MM-DD).")
            return _INVALID
        return value

    # -- contradictions within one AND group

    def contradictions(self, group: Group) -> None:
        """Flag a condition that no customer can meet together with an earlier sibling."""
        ranges: dict[str, tuple[float, float, str]] = {}
        sets: dict[str, tuple[set[Any], str]] = {}
        for child in group.children:
            if not isinstance(child, Condition):
                continue
            key, op, v = child.spec.key, child.operator, child.value
            if child.spec.kind == NUMBER and op in ("eq", "gt", "gte", "lt", "lte", "between"):
                low, high = _interval(op, v, child.spec.integer)
                if key in ranges:
                    old_low, old_high, other = ranges[key]
                    low, high = max(low, old_low), min(high, old_high)
                    if low > high:
                        self.problem(child.path, "No customer can match both this and {other}.", other=other)
                        continue
                ranges[key] = (low, high, child.path)
            elif child.spec.kind in (ENUM, TEXT) and op in ("eq", "in"):
                allowed = set(v) if op == "in" else {v}
                if key in sets:
                    old, other = sets[key]
                    if not allowed & old:
                        self.problem(child.path, "No customer can match both this and {other}.", other=other)
                        continue
                    allowed &= old
                sets[key] = (allowed, child.path)


class _Invalid:
    def __repr__(self) -> str:
        return "<invalid>"


_INVALID: Any = _Invalid()


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _plain(number: float) -> int | float:
    return int(number) if float(number).is_integer() else number


def _as_number(raw: Any) -> float | int | None:
    """A finite number from a JSON number or a numeric string (full-width digits allowed); never a bool."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if abs(raw) < 10**15 else None
    if isinstance(raw, float):
        return raw if math.isfinite(raw) and abs(raw) < 1e15 else None
    if isinstance(raw, str) and len(raw) <= 40:
        text = fold_width(raw).strip().replace(",", "")
        try:
            number = float(text)
        except ValueError:
            return None
        if not math.isfinite(number) or abs(number) >= 1e15:
            return None
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    return None


def _interval(op: str, v: Any, integer: bool) -> tuple[float, float]:
    step = 1 if integer else 0
    if op == "eq":
        return v, v
    if op == "between":
        return v[0], v[1]
    if op == "gt":
        return (v + step if integer else math.nextafter(v, math.inf)), math.inf
    if op == "gte":
        return v, math.inf
    if op == "lt":
        return -math.inf, (v - step if integer else math.nextafter(v, -math.inf))
    return -math.inf, v  # lte


def resolve_field(name: str, ctx: Context) -> FieldSpec | None:
    """The spec of a registered field, or of a custom field `custom.<key>` that exists."""
    if name in FIELDS:
        return FIELDS[name]
    if name.startswith("custom."):
        key = name.removeprefix("custom.")
        if key in ctx.custom:
            kind, choices = ctx.custom[key]
            return custom_field_spec(key, kind, choices)
    return None


def custom_field_spec(key: str, kind: str, choices: Sequence[str]) -> FieldSpec:
    """A rule field over one admin-defined custom field (stored in customers.custom as JSON)."""
    if kind == "number":
        return FieldSpec(
            key=f"custom.{key}", label=key, category="psychographic", kind=NUMBER,
            column=lambda _ctx: Customer.custom[key].as_float(),
        )  # fmt: skip
    if kind == "date":
        return FieldSpec(
            key=f"custom.{key}", label=key, category="psychographic", kind=DATE, datetime_column=False,
            column=lambda _ctx: Customer.custom[key].as_string(),
        )  # fmt: skip
    frozen = tuple(choices)
    return FieldSpec(
        key=f"custom.{key}", label=key, category="psychographic", kind=ENUM if kind == "choice" else TEXT,
        column=lambda _ctx: Customer.custom[key].as_string(),
        choices=(lambda: frozen) if kind == "choice" else None,
    )  # fmt: skip


def parse_rules(raw: Any, ctx: Context) -> Group:
    """Validate rules; raise ValidationFailed naming every bad condition by its path."""
    parser = _Parser(ctx)
    group = parser.group(raw, "", 1)
    if parser.problems or group is None:
        raise ValidationFailed(parser.problems or [("rules", "The rules are not valid.", {})])
    return group


def to_json(group: Group) -> dict[str, Any]:
    """Validated rules back to JSON: numbers as numbers, dates as ISO text, text folded, lists deduped."""

    def node(n: Condition | Group) -> dict[str, Any]:
        if isinstance(n, Group):
            return {"op": n.op, "conditions": [node(c) for c in n.children]}
        out: dict[str, Any] = {"field": n.spec.key, "operator": n.operator}
        if n.operator not in NO_VALUE:
            out["value"] = _jsonable(n.value)
        if n.days:
            out["days"] = n.days
        return out

    return node(group)


def _jsonable(value: Any) -> Any:
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


def normalize_rules(raw: Any, ctx: Context) -> dict[str, Any]:
    """Validate rules and return their canonical JSON (what is stored)."""
    return to_json(parse_rules(raw, ctx))


# ---------------------------------------------------------------- compiling


@dataclass
class Compiled:
    where: ColumnElement[bool]
    joins: list[str]

    def select_from(self, *columns: Any) -> Select[Any]:
        """SELECT columns FROM customers [LEFT JOIN the tables the rules read] WHERE the rules; a customer
        merged into another (hidden, its rows moved to the survivor) is never a member."""
        source: FromClause = Customer.__table__
        for name in self.joins:
            target, onclause = JOINS[name]
            source = source.outerjoin(target, onclause())
        return select(*columns).select_from(source).where(Customer.merged_into_id.is_(None), self.where)


def compile_rules(raw: Any, ctx: Context) -> Compiled:
    """Validate and compile rules to a WHERE clause over customers (plus the joins it needs)."""
    group = parse_rules(raw, ctx)
    joins: list[str] = []
    where = _compile(group, ctx, joins)
    return Compiled(where, joins)


def _compile(node: Condition | Group, ctx: Context, joins: list[str]) -> ColumnElement[bool]:
    if isinstance(node, Group):
        parts = [_compile(child, ctx, joins) for child in node.children]
        return and_(true(), *parts) if node.op == "and" else or_(false(), *parts)
    for name in node.spec.joins:
        if name not in joins:
            joins.append(name)
    if node.spec.build is not None:
        return node.spec.build(node, ctx)
    assert node.spec.column is not None
    return compare(node.spec.column(ctx), node, ctx)


def compare(col: ColumnElement[Any], cond: Condition, ctx: Context) -> ColumnElement[bool]:
    """The generic comparison of a column with a validated condition (null handling included)."""
    op, v, spec = cond.operator, cond.value, cond.spec
    if spec.kind == DATE and op not in NO_VALUE:
        expr = _date_compare(col, op, v, ctx, spec.datetime_column)
    else:
        expr = _plain_compare(col, op, v, text=spec.kind in (TEXT, ENUM))
    if op in NEGATIVE:
        expr = or_(expr, col.is_(None))
    elif spec.default is not None and op not in NO_VALUE and matches(op, spec.default, v):
        # a customer without a row in the joined table has the default value and so matches too
        expr = or_(expr, col.is_(None))
    if op == "is_empty" and spec.default is not None:
        return false()
    if op == "is_not_empty" and spec.default is not None:
        return true()
    return expr


def _plain_compare(col: ColumnElement[Any], op: str, v: Any, *, text: bool) -> ColumnElement[bool]:
    if op == "eq":
        return col == v
    if op == "ne":
        return col != v
    if op == "gt":
        return col > v
    if op == "gte":
        return col >= v
    if op == "lt":
        return col < v
    if op == "lte":
        return col <= v
    if op == "between":
        return and_(col >= v[0], col <= v[1])
    if op == "not_between":
        return or_(col < v[0], col > v[1])
    if op == "in":
        return col.in_(v)
    if op == "not_in":
        return col.not_in(v)
    if op == "contains":
        return col.icontains(v, autoescape=True)
    if op == "starts_with":
        return col.istartswith(v, autoescape=True)
    if op == "is_empty":
        return or_(col.is_(None), col == "") if text else col.is_(None)
    if op == "is_not_empty":
        return and_(col.is_not(None), col != "") if text else col.is_not(None)
    raise AssertionError(op)


def _date_compare(
    col: ColumnElement[Any], op: str, v: Any, ctx: Context, is_datetime: bool
) -> ColumnElement[bool]:
    """Dates are local days: `on 2026-05-01` is [start of that day, start of the next) locally."""

    def bound(day: date) -> Any:
        return ctx.day_start(day) if is_datetime else day.isoformat()

    if op == "on":
        return and_(col >= bound(v), col < bound(v + timedelta(days=1)))
    if op == "before":
        return col < bound(v)
    if op == "after":
        return col >= bound(v + timedelta(days=1))
    if op == "between":
        return and_(col >= bound(v[0]), col < bound(v[1] + timedelta(days=1)))
    if op == "in_last_days":
        return col >= bound(ctx.today - timedelta(days=v))
    if op == "more_than_days_ago":
        return col < bound(ctx.today - timedelta(days=v))
    raise AssertionError(op)


def days_since(col: ColumnElement[Any], cond: Condition, ctx: Context) -> ColumnElement[bool]:
    """Conditions on whole days since a datetime column (0 = today, local time) as ranges on the column."""
    op, v = cond.operator, cond.value

    def at_most(n: int) -> ColumnElement[bool]:  # days since <= n
        return col >= ctx.day_start(ctx.today - timedelta(days=n))

    def at_least(n: int) -> ColumnElement[bool]:  # days since >= n
        return col < ctx.day_start(ctx.today - timedelta(days=n - 1))

    if op in NO_VALUE:
        return _plain_compare(col, op, v, text=False)
    expr: ColumnElement[bool]
    if op == "eq":
        expr = and_(at_least(v), at_most(v))
    elif op == "ne":
        expr = or_(not_(and_(at_least(v), at_most(v))), col.is_(None))
    elif op == "gt":
        expr = at_least(v + 1)
    elif op == "gte":
        expr = at_least(v)
    elif op == "lt":
        expr = at_most(v - 1) if v > 0 else false()
    elif op == "lte":
        expr = at_most(v)
    elif op == "between":
        expr = and_(at_least(v[0]), at_most(v[1]))
    elif op == "not_between":
        expr = or_(not_(and_(at_least(v[0]), at_most(v[1]))), col.is_(None))
    else:
        raise AssertionError(op)
    return expr


def years_before(day: date, years: int) -> date:
    """The same calendar day `years` earlier (29 February becomes 28 February in a common year)."""
    target = day.year - years
    if target < 1:
        return date.min
    try:
        return day.replace(year=target)
    except ValueError:
        return day.replace(year=target, day=28)


def age_condition(cond: Condition, ctx: Context) -> ColumnElement[bool]:
    """Age from birthday without SQL date functions: age >= a  <=>  birthday <= today minus a years."""
    col: _Col[Any] = Customer.birthday  # type: ignore[assignment]
    op, v, today = cond.operator, cond.value, ctx.today

    def at_least(a: int) -> ColumnElement[bool]:
        return col <= years_before(today, a) if a > 0 else col.is_not(None)

    def at_most(a: int) -> ColumnElement[bool]:
        return col > years_before(today, a + 1)

    if op in NO_VALUE:
        return _plain_compare(col, op, v, text=False)
    if op == "eq":
        return and_(at_least(v), at_most(v))
    if op == "ne":
        return or_(not_(and_(at_least(v), at_most(v))), col.is_(None))
    if op == "gt":
        return at_least(v + 1)
    if op == "gte":
        return at_least(v)
    if op == "lt":
        return at_most(v - 1) if v > 0 else false()
    if op == "lte":
        return at_most(v)
    if op == "between":
        return and_(at_least(v[0]), at_most(v[1]))
    if op == "not_between":
        return or_(not_(and_(at_least(v[0]), at_most(v[1]))), col.is_(None))
    raise AssertionError(op)


def matches(op: str, x: Any, v: Any) -> bool:
    """Whether the plain value x meets the condition (used for the default of customers without a row)."""
    if op == "eq":
        return bool(x == v)
    if op == "ne":
        return bool(x != v)
    if op == "gt":
        return bool(x > v)
    if op == "gte":
        return bool(x >= v)
    if op == "lt":
        return bool(x < v)
    if op == "lte":
        return bool(x <= v)
    if op == "between":
        return bool(v[0] <= x <= v[1])
    if op == "not_between":
        return not v[0] <= x <= v[1]
    if op == "in":
        return x in v
    if op == "not_in":
        return x not in v
    return False


# ---------------------------------------------------------------- explaining


def describe(
    raw: Any, ctx: Context, label: Callable[[str], str], value_label: Callable[[FieldSpec, Any], str]
) -> str:
    """A one-line human reading of valid rules, e.g. `Age between 30 and 39 AND (Gender is female)`."""
    group = parse_rules(raw, ctx)

    def text(node: Condition | Group, top: bool) -> str:
        if isinstance(node, Group):
            inner = f" {label(node.op.upper())} ".join(text(c, False) for c in node.children)
            return inner if top or len(node.children) == 1 else f"({inner})"
        name = label(node.spec.label)
        op = label(OPERATORS[node.operator])
        if node.operator in NO_VALUE:
            out = f"{name} {op}"
        elif node.operator in RANGE_OPS:
            low, high = (value_label(node.spec, x) for x in node.value)
            out = f"{name} {op} {low} – {high}"
        elif isinstance(node.value, list):
            out = f"{name} {op} {', '.join(value_label(node.spec, x) for x in node.value)}"
        else:
            out = f"{name} {op} {value_label(node.spec, node.value)}"
        if node.days:
            out += " " + label("within {days} days").format(days=node.days)
        return out

    return text(group, True)


# The built-in fields register themselves; imported last because they use the names above.
from kokyaku.segments import fields as _builtin_fields  # noqa: E402,F401
