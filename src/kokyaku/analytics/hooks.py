"""Where the scores plug into other domains: segment-rule fields and the lifecycle's at-risk stage.

Imported by analytics.scoring (so by the CLI, the job and the pages); registering twice is harmless."""

from typing import Any

import numpy as np
from sqlalchemy import select

from kokyaku.analytics.tables import CHURN_BANDS, CustomerScore
from kokyaku.customers.models import Customer
from kokyaku.segments.lifecycle import register_alive_source
from kokyaku.segments.rules import ENUM, NUMBER, FieldSpec, register_field, register_join

NUMBER_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between", "not_between", "is_empty", "is_not_empty")


def alive_of(session: Any, ids: np.ndarray) -> np.ndarray | None:
    """p_alive per customer id (NaN where unscored), or None when nothing has been scored yet."""
    rows = session.execute(
        select(CustomerScore.customer_id, CustomerScore.p_alive).order_by("customer_id")
    ).all()
    if not rows:
        return None
    table = np.array(rows, dtype=np.float64)
    scored, p = table[:, 0].astype(np.int64), table[:, 1]
    wanted = np.asarray(ids, dtype=np.int64)
    at = np.clip(np.searchsorted(scored, wanted), 0, scored.size - 1)
    return np.where(scored[at] == wanted, p[at], np.nan)


_registered = False


def register() -> None:
    """Add the score fields to segment rules and the model to the lifecycle (once per process)."""
    global _registered
    if _registered:
        return
    _registered = True
    register_join("scores", CustomerScore, lambda: CustomerScore.customer_id == Customer.id)
    register_field(
        FieldSpec(
            key="p_alive",
            label="Probability still active (%)",
            category="behavioural",
            kind=NUMBER,
            operators=NUMBER_OPS,
            column=lambda _c: CustomerScore.p_alive * 100,
            joins=("scores",),
            minimum=0,
            maximum=100,
            unit="%",
        )
    )
    register_field(
        FieldSpec(
            key="clv_12m",
            label="Predicted 12-month value",
            category="behavioural",
            kind=NUMBER,
            operators=NUMBER_OPS,
            column=lambda _c: CustomerScore.clv_12m,
            joins=("scores",),
            integer=True,
            minimum=0,
            maximum=10**14,
            unit="money",
        )
    )
    register_field(
        FieldSpec(
            key="churn_band",
            label="Churn risk",
            category="behavioural",
            kind=ENUM,
            column=lambda _c: CustomerScore.churn_band,
            joins=("scores",),
            choices=lambda: CHURN_BANDS,
        )
    )
    register_alive_source(alive_of)
