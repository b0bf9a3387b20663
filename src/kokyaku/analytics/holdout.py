"""The calibration/holdout check of the BG/NBD paper on the business's own orders: fit a model on the orders
up to a cut-off day, predict the cumulative repeat purchases per period, compare with what really happened.

The customers are those who first bought on or before the cut-off (the ones the model was fitted on); the
curve runs from the first of their first purchases to `end`, calibration and holdout both (the paper's figure:
weeks 1-78, cut-off after week 39). The error is the mean absolute percentage error of the cumulative curve
over the holdout periods. Purchases are counted as distinct (customer, local day) pairs, as in the fit."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from kokyaku.analytics.features import EPOCH, day_number_sql, extract, raise_work_mem, utc_offset_minutes
from kokyaku.analytics.fitting import LABELS, fit_repeat_model
from kokyaku.analytics.models import FitError, expected_cumulative_repeats, mape
from kokyaku.analytics.models.summary import UNIT_DAYS
from kokyaku.commerce.metrics import base_currency
from kokyaku.commerce.models import VOID_STATUSES
from kokyaku.config import get_settings
from kokyaku.db import UTCDateTime
from kokyaku.errors import ValidationFailed

RepeatModel = Literal["bgnbd", "paretonbd"]
HoldoutUnit = Literal["day", "week"]
REPEAT_MODELS = ("bgnbd", "paretonbd")
UNITS = ("day", "week")
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2999, 12, 31)
MAX_PERIODS = 3000  # a curve longer than this is unreadable (and a large response): use weeks


@dataclass(frozen=True)
class Period:
    """One point of the curve: cumulative repeat purchases from the start to the end of period `index`."""

    index: int  # 1, 2, ...
    start: date
    actual: int
    predicted: float
    holdout: bool


@dataclass
class HoldoutCheck:
    model: str
    unit: str
    until: date
    start: date
    end: date
    customers: int
    params: dict[str, float]
    log_likelihood: float
    cutoff: float  # the cut-off in periods from the start (39.0 for CDNOW's weeks)
    calibration_periods: int
    mape: float | None  # holdout, a fraction; None when no holdout period has a repeat purchase
    calibration_mape: float | None
    periods: list[Period] = field(default_factory=list)

    @property
    def holdout_actual(self) -> int:
        """Repeat purchases made in the holdout periods."""
        return self._holdout_delta(lambda p: p.actual)

    @property
    def holdout_predicted(self) -> float:
        return self._holdout_delta(lambda p: p.predicted)

    def _holdout_delta(self, value: Any) -> Any:
        if not self.periods:
            return 0
        before = value(self.periods[self.calibration_periods - 1]) if self.calibration_periods else 0
        return value(self.periods[-1]) - before

    def as_dict(self) -> dict[str, Any]:
        """JSON for the CLI and the API: percentages rounded to 0.01, predictions to 0.1."""
        pct = lambda v: None if v is None else round(100 * v, 2)  # noqa: E731
        return {
            "model": self.model,
            "unit": self.unit,
            "until": self.until.isoformat(),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "customers": self.customers,
            "params": self.params,
            "log_likelihood": self.log_likelihood,
            "cutoff_period": round(self.cutoff, 4),
            "calibration_periods": self.calibration_periods,
            "holdout_periods": len(self.periods) - self.calibration_periods,
            "mape_percent": pct(self.mape),
            "calibration_mape_percent": pct(self.calibration_mape),
            "holdout_repeats": {
                "actual": self.holdout_actual,
                "predicted": round(float(self.holdout_predicted), 1),
            },
            "curve": [
                {
                    "period": p.index,
                    "start": p.start.isoformat(),
                    "actual": p.actual,
                    "predicted": round(p.predicted, 1),
                    "holdout": p.holdout,
                }
                for p in self.periods
            ],
        }


def _check_day(name: str, value: date) -> None:
    if not FIRST_DAY <= value <= LAST_DAY:
        message = "Choose a date between {first} and {last}."
        raise ValidationFailed([(name, message, {"first": FIRST_DAY, "last": LAST_DAY})])


def _days_table(
    session: Session, *, cut_day: int, end: date | None, tz: str, offset: int, currency: str
) -> np.ndarray:
    """Per local day: customers entering (first purchase) and repeat purchase days, for the customers whose
    first purchase is on or before the cut-off; rows (day, entries, repeats) ordered by day."""
    day = day_number_sql(session.get_bind().dialect.name, "ordered_at", offset)
    bounded = "AND ordered_at < :end" if end else ""
    sql = text(
        f"""
        WITH days AS (
            SELECT customer_id, {day} AS d
            FROM orders
            WHERE status NOT IN :void AND currency = :currency {bounded}
            GROUP BY customer_id, {day}
        ), marked AS (
            SELECT d, MIN(d) OVER (PARTITION BY customer_id) AS first_d FROM days
        )
        SELECT d, SUM(CASE WHEN d = first_d THEN 1 ELSE 0 END), SUM(CASE WHEN d > first_d THEN 1 ELSE 0 END)
        FROM marked
        WHERE first_d <= :cut
        GROUP BY d
        ORDER BY d
        """
    ).bindparams(bindparam("void", expanding=True))
    params: dict[str, Any] = {"void": list(VOID_STATUSES), "currency": currency, "cut": cut_day}
    if end:
        sql = sql.bindparams(bindparam("end", type_=UTCDateTime))
        params["end"] = datetime.combine(end + timedelta(days=1), time(0), ZoneInfo(tz)).astimezone(UTC)
    raise_work_mem(session)
    return np.array(session.execute(sql, params).all(), dtype=np.int64).reshape(-1, 3)


def holdout_check(
    session: Session,
    *,
    model: str,
    until: date,
    unit: str = "week",
    end: date | None = None,
    tz: str | None = None,
) -> HoldoutCheck:
    """Fit `model` on the orders up to `until` (inclusive) and track it against the orders up to `end`
    (inclusive; default the last day with a purchase). Raises ValidationFailed or FitError."""
    problems: list[tuple[str, str, dict[str, Any]]] = []
    if model not in REPEAT_MODELS:
        problems.append(("model", "Choose BG/NBD or Pareto/NBD.", {}))
    if unit not in UNITS:
        problems.append(("unit", "Choose days or weeks.", {}))
    if problems:
        raise ValidationFailed(problems)
    _check_day("until", until)
    if end is not None:
        _check_day("end", end)
        if end <= until:
            raise ValidationFailed([("end", "The end must be after the cut-off date.", {})])
    tz = tz or get_settings().timezone
    currency = base_currency()
    features = extract(session, until=until, tz=tz, currency=currency)
    if features.customer_id.size == 0:
        message = "There are no purchases up to {until}: choose a later cut-off date."
        raise ValidationFailed([("until", message, {"until": until})])
    offset = utc_offset_minutes(tz, until)
    table = _days_table(session, cut_day=features.end_day, end=end, tz=tz, offset=offset, currency=currency)
    start_day = int(features.first_day.min())
    last_day = (end - EPOCH).days if end else int(table[:, 0].max())
    k = UNIT_DAYS[unit]
    n_periods = (last_day - start_day + 1) // k
    calibration = (features.end_day - start_day + 1) // k
    if n_periods <= calibration:
        message = "The holdout after the cut-off is shorter than one period: choose an earlier cut-off date."
        raise ValidationFailed([("until", message, {})])
    if n_periods > MAX_PERIODS:
        message = "The curve would have {n} points (at most {max}): use weeks or an earlier end."
        raise ValidationFailed([("unit", message, {"n": n_periods, "max": MAX_PERIODS})])
    fitted, report = fit_repeat_model(features, model, unit)  # type: ignore[arg-type]
    days, entries, repeats = table[:, 0] - start_day, table[:, 1], table[:, 2]
    period = days // k
    counted = (repeats > 0) & (period < n_periods)
    actual = np.cumsum(np.bincount(period[counted], weights=repeats[counted], minlength=n_periods))
    entering = entries > 0
    try:
        with np.errstate(all="ignore"):
            predicted = expected_cumulative_repeats(
                fitted.expected_purchases_new,
                days[entering] / k,
                n_periods,
                "day" if unit == "day" else "week",
                weights=entries[entering],
            )
    except FloatingPointError as exc:
        raise FitError(model=LABELS[model], reason=str(exc)) from exc
    if not np.isfinite(predicted).all():
        raise FitError(model=LABELS[model], reason="the predicted curve is not finite")
    first = EPOCH + timedelta(days=start_day)
    return HoldoutCheck(
        model=model,
        unit=unit,
        until=until,
        start=first,
        end=EPOCH + timedelta(days=last_day),
        customers=report["customers"],
        params=report["params"],
        log_likelihood=report["log_likelihood"],
        cutoff=(features.end_day - start_day + 1) / k,
        calibration_periods=calibration,
        mape=mape(actual[calibration:], predicted[calibration:]),
        calibration_mape=mape(actual[:calibration], predicted[:calibration]),
        periods=[
            Period(
                index=i + 1,
                start=first + timedelta(days=i * k),
                actual=int(actual[i]),
                predicted=float(predicted[i]),
                holdout=i >= calibration,
            )
            for i in range(n_periods)
        ],
    )
