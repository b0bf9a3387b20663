"""Score every customer: pick BG/NBD or Pareto/NBD by holdout error, fit Gamma-Gamma for spend, predict
vectorised, write customer_scores with batched upserts. A fit that fails raises FitError before any write."""

import time as clock
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import delete
from sqlalchemy.orm import Session

from kokyaku.analytics.features import Features, OrderHistory
from kokyaku.analytics.fitting import LABELS, MODELS
from kokyaku.analytics.hooks import register
from kokyaku.analytics.models import BGNBD, FitError, GammaGamma, ParetoNBD, clv
from kokyaku.analytics.models.summary import Unit
from kokyaku.analytics.tables import CustomerScore
from kokyaku.config import get_settings
from kokyaku.db import utcnow
from kokyaku.kit.bulk import db_formats, upsert

UNIT: Unit = "week"
WEEK = 7.0
HOLDOUT_SHARE = 0.25
HOLDOUT_SAMPLE = 100_000
MIN_HOLDOUT_DAYS = 14  # shorter than two weeks says nothing about repeat buying
# p_alive at or above LOW is low churn risk; below HIGH is high risk.
LOW_RISK, HIGH_RISK = 0.7, 0.3
Progress = Callable[[int, int, str], None]


@dataclass
class ScoreRun:
    """What a scoring run did, for the CLI, the job result and the log (no personal data)."""

    model: str
    scored: int
    holdout_error: dict[str, float] = field(default_factory=dict)
    selection: str = "holdout"
    params: dict[str, float] = field(default_factory=dict)
    spend_params: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "scored": self.scored,
            "selection": self.selection,
            "holdout_error": self.holdout_error,
            "params": self.params,
            "spend_params": self.spend_params,
            "seconds": round(self.seconds, 3),
        }


def churn_band(p_alive: np.ndarray) -> np.ndarray:
    """low / medium / high churn risk from the probability of being still active."""
    return np.where(p_alive >= LOW_RISK, "low", np.where(p_alive >= HIGH_RISK, "medium", "high"))


def _rfm(f: Features) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return f.frequency.astype(np.float64), f.recency(UNIT), f.age(UNIT)


def holdout_errors(
    history: OrderHistory, full: Features
) -> tuple[dict[str, float], dict[str, tuple[float, ...]]]:
    """Per-customer mean absolute error of each model's holdout purchases, fitted on the first 75%.

    Above HOLDOUT_SAMPLE customers a fixed random sample is used: choosing needs only the difference of two
    mean errors, which that many customers pin down, and it spares the slow Pareto/NBD fit most of its
    time (the chosen model is then fitted on everyone, starting from the parameters fitted here, which are
    returned beside the errors)."""
    start = int(full.first_day.min())
    span = full.end_day - start
    holdout_days = int(round(span * HOLDOUT_SHARE))
    if holdout_days < MIN_HOLDOUT_DAYS:
        return {}, {}
    calib_end = date(1970, 1, 1) + timedelta(days=full.end_day - holdout_days)
    calib = history.features(calib_end)
    if calib.customer_id.size == 0:
        return {}, {}
    at = np.searchsorted(full.customer_id, calib.customer_id)
    actual = (full.frequency[at] - calib.frequency).astype(np.float64)
    x, t_x, T = _rfm(calib)
    if x.size > HOLDOUT_SAMPLE:
        pick = np.sort(np.random.default_rng(0).choice(x.size, HOLDOUT_SAMPLE, replace=False))
        x, t_x, T, actual = x[pick], t_x[pick], T[pick], actual[pick]
    errors: dict[str, float] = {}
    params: dict[str, tuple[float, ...]] = {}
    for name, cls in MODELS.items():
        try:
            fitted = cls.fit(x, t_x, T)
        except FitError:
            continue
        predicted = fitted.expected_purchases(holdout_days / WEEK, x, t_x, T)
        errors[name] = float(np.mean(np.abs(predicted - actual)))
        params[name] = tuple(fitted.params.values())
    return errors, params


def _choose(history: OrderHistory, full: Features) -> tuple[str, BGNBD | ParetoNBD, dict[str, float], str]:
    """The model with the smaller holdout error, refitted on everything; BG/NBD first without a holdout."""
    errors, starts = holdout_errors(history, full)
    order = sorted(errors, key=errors.__getitem__) if errors else list(MODELS)
    selection = "holdout" if errors else "no holdout"
    x, t_x, T = _rfm(full)
    failures: list[str] = []
    for name in order + [n for n in MODELS if n not in order]:
        try:
            return name, MODELS[name].fit(x, t_x, T, start=starts.get(name)), errors, selection
        except FitError as exc:
            failures.append(str(exc))
    raise FitError(model="BG/NBD and Pareto/NBD", reason="; ".join(failures))


def score(
    session: Session, *, until: date | None = None, tz: str | None = None, progress: Progress | None = None
) -> ScoreRun:
    """Fit on all counted orders up to `until` (today), score every customer and upsert customer_scores."""
    began = clock.perf_counter()
    tz = tz or get_settings().timezone
    until = until or datetime.now(ZoneInfo(tz)).date()
    step = progress or (lambda done, total, message: None)
    step(0, 5, "Reading orders")
    history = OrderHistory(session, until=until, tz=tz)
    full = history.features()
    if full.customer_id.size == 0:
        raise FitError(model="BG/NBD", reason=f"there are no orders up to {until}")
    step(1, 5, "Comparing models on a holdout period")
    name, model, errors, selection = _choose(history, full)
    step(2, 5, "Fitting the spend model")
    x, t_x, T = _rfm(full)
    # Gamma-Gamma in minor units: JPY has none, so yen in, yen out.
    spend = GammaGamma.fit(x, full.monetary)
    step(3, 5, "Scoring customers")
    p_alive = np.clip(model.probability_alive(x, t_x, T), 0.0, 1.0)
    e90 = model.expected_purchases(90 / WEEK, x, t_x, T)
    e365 = model.expected_purchases(365 / WEEK, x, t_x, T)
    value = clv(model, spend, x, t_x, T, np.nan_to_num(full.monetary), months=12, unit=UNIT)
    for label, arr in (("probability alive", p_alive), ("expected purchases", e365), ("CLV", value)):
        if not np.isfinite(arr).all():
            raise FitError(model=LABELS[name], reason=f"the {label} predictions are not finite")
    step(4, 5, "Writing scores")
    now = utcnow()
    write_scores(
        session,
        customer_ids=full.customer_id,
        p_alive=p_alive,
        expected_90d=e90,
        expected_365d=e365,
        clv_12m=np.rint(value).astype(np.int64),
        model=name,
        scored_at=now,
    )
    step(5, 5, "Done")
    return ScoreRun(
        model=name,
        scored=int(full.customer_id.size),
        holdout_error=errors,
        selection=selection,
        params=model.params,
        spend_params=spend.params,
        seconds=clock.perf_counter() - began,
    )


def write_scores(
    session: Session,
    *,
    customer_ids: np.ndarray,
    p_alive: np.ndarray,
    expected_90d: np.ndarray,
    expected_365d: np.ndarray,
    clv_12m: np.ndarray,
    model: str,
    scored_at: datetime,
) -> None:
    """Replace every customer's scores in this transaction; customers no longer scored (all their orders
    voided) lose their row. Readers see the old scores until it commits. Rows are updated in place rather
    than deleted and inserted again: an update keeps the key, so it costs no foreign-key check, and with no
    secondary index on the table PostgreSQL can update within the page (HOT)."""
    when = db_formats(session)[0](scored_at)
    n = customer_ids.size
    rows = list(
        zip(
            customer_ids.tolist(), p_alive.tolist(), expected_90d.tolist(), expected_365d.tolist(),
            clv_12m.tolist(), churn_band(p_alive).tolist(), [model] * n, [when] * n, strict=True,
        )
    )  # fmt: skip
    upsert(session, CustomerScore.__table__, "customer_id", SCORE_COLUMNS, rows)  # type: ignore[arg-type]
    session.execute(delete(CustomerScore).where(CustomerScore.scored_at != scored_at))


SCORE_COLUMNS = (
    "customer_id", "p_alive", "expected_90d", "expected_365d", "clv_12m", "churn_band", "model", "scored_at",
)  # fmt: skip


register()
