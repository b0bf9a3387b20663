"""RFM quintiles and named segments on hand-built values; lifecycle stages and their dated history through
a customer's life (new, at risk, churned, won back, repeat; loyal; back to lead)."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from kokyaku.commerce import service as commerce
from kokyaku.db import Database
from kokyaku.segments import service
from kokyaku.segments.lifecycle import (
    AT_RISK,
    CHURNED,
    DAY_US,
    LEAD,
    LOYAL,
    NEW,
    REPEAT,
    STAGES,
    WON_BACK,
    LifecycleRules,
    classify,
)
from kokyaku.segments.models import CustomerLifecycle, CustomerRfm, LifecycleChange
from kokyaku.segments.recompute import recompute_all
from kokyaku.segments.rfm import RFM_SEGMENTS, SEGMENT_GRID, quintile_scores, score
from tests.commerce.factories import make_order
from tests.conftest import TEST_ACTOR
from tests.customers.factories import make_customer

RULES = LifecycleRules()
TZ = "Asia/Tokyo"


# ---------------------------------------------------------------- RFM, pure


def test_quintiles_of_distinct_values() -> None:
    assert quintile_scores(np.arange(1, 11)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # recency: fewer days is better
    assert quintile_scores(np.array([400, 3, 30, 90, 7]), higher_is_better=False).tolist() == [1, 5, 3, 2, 4]


def test_ties_share_the_lowest_score_of_their_group() -> None:
    # six one-time buyers of ten: all score 1, and the next value jumps to 4 (scores 2 and 3 stay empty)
    scores = quintile_scores(np.array([1, 1, 1, 1, 1, 1, 2, 2, 3, 9]))
    assert scores.tolist() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]
    assert quintile_scores(np.array([5, 5, 5])).tolist() == [1, 1, 1]
    assert quintile_scores(np.array([], dtype=np.int64)).tolist() == []


def test_named_segments_follow_the_documented_grid() -> None:
    expected = {
        (5, 5): "champions", (5, 4): "champions", (5, 1): "new_customers", (4, 1): "promising",
        (4, 4): "loyal", (3, 5): "loyal", (4, 2): "potential_loyalists", (5, 3): "potential_loyalists",
        (3, 3): "need_attention", (3, 1): "about_to_sleep", (1, 4): "at_risk", (2, 3): "at_risk",
        (1, 5): "cant_lose", (2, 5): "cant_lose", (2, 1): "hibernating", (1, 1): "lost", (1, 2): "lost",
    }  # fmt: skip
    for (r, f), name in expected.items():
        assert SEGMENT_GRID[r - 1][f - 1] == name
    assert {name for row in SEGMENT_GRID for name in row} == set(RFM_SEGMENTS)
    result = score(np.array([1, 1000]), np.array([20, 1]), np.array([99_000, 100]))
    # two customers: the better one has half below it, 1 + floor(5 x 1/2) = 3 -> R3 F3; the other R1 F1
    assert [RFM_SEGMENTS[c] for c in result.segment] == ["need_attention", "lost"]
    assert result.bounds["f"] == {"1": [1, 1], "3": [20, 20]}


# ---------------------------------------------------------------- lifecycle, pure


def _one(orders: int, first_days_ago: float, last_days_ago: float, prev: int = LEAD,
         prev_since_days_ago: float | None = None,
         alive: float | None = None) -> tuple[str, float]:  # fmt: skip
    """The stage of one customer and how many days ago the change is dated."""
    now = 10_000 * DAY_US
    prev_since = (
        np.iinfo(np.int64).min if prev_since_days_ago is None else now - int(prev_since_days_ago * DAY_US)
    )
    result = classify(
        orders=np.array([orders]), first_us=np.array([now - int(first_days_ago * DAY_US)]),
        last_us=np.array([now - int(last_days_ago * DAY_US)]), days_since_last=np.array([int(last_days_ago)]),
        prev_stage=np.array([prev], dtype=np.int8), prev_since_us=np.array([prev_since]), now_us=now,
        rules=RULES, alive=None if alive is None else np.array([alive]),
    )  # fmt: skip
    return STAGES[int(result.stage[0])], (now - int(result.changed_at[0])) / DAY_US


def test_stages_by_behaviour() -> None:
    assert _one(1, 10, 10) == ("new", 10)  # dated by the first purchase
    assert _one(1, 91, 91) == ("at_risk", 1)  # 90 days without a second purchase, crossed a day ago
    assert _one(3, 200, 10) == ("repeat", 10)
    assert _one(6, 300, 20) == ("loyal", 20)
    assert _one(6, 1500, 200)[0] == "repeat"  # loyal needs a purchase within 180 days
    assert _one(6, 300, 200)[0] == "at_risk"  # every 20 days, now silent for 200
    # own rhythm: every 60 days -> at risk after 120 days, churned after max(365, 240) days
    assert _one(5, 300, 60) == ("loyal", 60)
    assert _one(5, 360, 121) == ("at_risk", 121 - 2 * (360 - 121) / 4)  # crossed 2 x 59.75 days after
    assert _one(5, 500, 380)[0] == "churned"
    # a slow buyer (every 200 days) is not at risk at 300 days, churned only after 800
    assert _one(3, 700, 300)[0] == "repeat"
    assert _one(3, 1300, 900)[0] == "churned"


def test_won_back_after_at_risk_or_churned_and_for_a_while_only() -> None:
    assert _one(2, 400, 5, prev=CHURNED, prev_since_days_ago=35) == ("won_back", 5)
    assert _one(2, 400, 5, prev=AT_RISK, prev_since_days_ago=100) == ("won_back", 5)
    # no purchase since becoming at risk: not won back, whatever else changed
    assert _one(2, 400, 150, prev=AT_RISK, prev_since_days_ago=100)[0] != "won_back"
    assert _one(2, 400, 5, prev=WON_BACK, prev_since_days_ago=30)[0] == "won_back"
    assert _one(2, 400, 5, prev=WON_BACK, prev_since_days_ago=100) == ("repeat", 10)  # dated when it expired


def test_probability_alive_marks_at_risk_through_the_extension_point() -> None:
    assert _one(3, 200, 10, alive=0.1) == ("at_risk", 0)
    assert _one(3, 200, 10, alive=0.9)[0] == "repeat"
    assert _one(3, 200, 10, alive=float("nan"))[0] == "repeat"


# ---------------------------------------------------------------- with the database


def _stage(db: Database, customer_id: int) -> str:
    with db.session(write=False) as s:
        row = s.get(CustomerLifecycle, customer_id)
        return row.stage if row else "lead"


def _history(db: Database, customer_id: int) -> list[tuple[str | None, str, datetime]]:
    with db.session(write=False) as s:
        rows = s.scalars(
            select(LifecycleChange)
            .where(LifecycleChange.customer_id == customer_id)
            .order_by(LifecycleChange.id)
        ).all()
        return [(r.from_stage, r.stage, r.changed_at) for r in rows]


def _run(db: Database, now: datetime) -> None:
    with db.session() as s:
        recompute_all(s, rules=RULES, tz=TZ, now=now)


def test_a_customer_journey_with_won_back_is_recorded_once_per_change(db: Database) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=500)
    with db.session() as s:
        kei = make_customer(s, name="木村 敬").id
        make_order(s, customer_id=kei, at=t0)
    _run(db, t0 + timedelta(days=1))
    _run(db, t0 + timedelta(days=2))  # nothing changed: no second history row
    assert _stage(db, kei) == "new"
    _run(db, t0 + timedelta(days=100))
    assert _stage(db, kei) == "at_risk"
    _run(db, t0 + timedelta(days=370))
    assert _stage(db, kei) == "churned"
    with db.session() as s:
        make_order(s, customer_id=kei, at=t0 + timedelta(days=380))
    _run(db, t0 + timedelta(days=381))
    assert _stage(db, kei) == "won_back"
    _run(db, t0 + timedelta(days=480))
    assert _stage(db, kei) == "repeat"
    history = _history(db, kei)
    assert [(a, b) for a, b, _ in history] == [
        ("lead", "new"), ("new", "at_risk"), ("at_risk", "churned"), ("churned", "won_back"),
        ("won_back", "repeat"),
    ]  # fmt: skip
    days = [(at - t0).days for _, _, at in history]
    assert days == [0, 90, 365, 380, 470]
    with db.session(write=False) as s:
        j = service.journey(s, kei)
        assert j.stage == "repeat" and [h.stage for h in j.history][:2] == ["repeat", "won_back"]


def test_loyal_customers_and_back_to_lead_when_every_order_is_cancelled(db: Database) -> None:
    now = datetime.now(UTC)
    with db.session() as s:
        fan = make_customer(s, name="常連 さん").id
        for d in (150, 120, 90, 60, 30):
            make_order(s, customer_id=fan, at=now - timedelta(days=d))
        once = make_customer(s, name="一度 きり").id
        order = make_order(s, customer_id=once, at=now - timedelta(days=3))
    _run(db, now)
    assert (_stage(db, fan), _stage(db, once)) == ("loyal", "new")
    with db.session() as s:
        commerce.change_status(s, actor=TEST_ACTOR, order_id=order.id, status="cancelled")
    _run(db, now + timedelta(minutes=1))
    assert _stage(db, once) == "lead"
    assert [(a, b) for a, b, _ in _history(db, once)] == [("lead", "new"), ("new", "lead")]
    with db.session(write=False) as s:
        assert s.get(CustomerRfm, once) is None  # no purchase, no RFM score


def test_rfm_scores_grid_and_only_changes_written(db: Database) -> None:
    now = datetime.now(UTC)
    spend = {
        "a": (1, 1, 1000),
        "b": (3, 2, 2000),
        "c": (30, 3, 3000),
        "d": (90, 4, 4000),
        "e": (400, 5, 50_000),
    }
    ids = {}
    with db.session() as s:
        for key, (days, n, total) in spend.items():
            ids[key] = make_customer(s, name=f"客 {key}").id
            for i in range(n):
                make_order(s, customer_id=ids[key], at=now - timedelta(days=days + 7 * i), price=total // n)
        make_customer(s, name="見込み 客")
    with db.session() as s:
        run = recompute_all(s, rules=RULES, tz=TZ, now=now)
        assert (run.customers, run.active, run.rfm_written) == (6, 5, 5)
    with db.session(write=False) as s:
        got = {k: (r.r, r.f, r.m, r.segment) for k, i in ids.items() if (r := s.get(CustomerRfm, i))}
    assert got == {
        "a": (5, 1, 1, "new_customers"), "b": (4, 2, 2, "potential_loyalists"),
        "c": (3, 3, 3, "need_attention"), "d": (2, 4, 4, "at_risk"), "e": (1, 5, 5, "cant_lose"),
    }  # fmt: skip
    grid = {(r, f): (n, rev) for r, f, n, rev in run.summary["grid"]}
    assert grid[(1, 5)] == (1, 50_000) and grid[(5, 1)] == (1, 1000) and sum(n for n, _ in grid.values()) == 5
    assert run.summary["stages"]["lead"] == 1 and sum(run.summary["stages"].values()) == 6
    with db.session() as s:
        again = recompute_all(s, rules=RULES, tz=TZ, now=now)
        assert (again.rfm_written, again.stage_changes) == (0, 0)


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_a_label_and_meaning(stage: str) -> None:
    from kokyaku.segments.lifecycle import STAGE_INFO

    assert STAGE_INFO[stage][0] and STAGE_INFO[stage][1]


def test_constants_are_consistent() -> None:
    assert tuple(range(7)) == (LEAD, NEW, REPEAT, LOYAL, AT_RISK, CHURNED, WON_BACK)


# ---------------------------------------------------------------- derived rows and customer deletion


def test_every_customer_id_column_has_a_foreign_key_or_is_cleaned_on_delete() -> None:
    from kokyaku.models import metadata

    unguarded = [
        f"{table.name}.{column.name}"
        for table in metadata.sorted_tables
        for column in table.columns
        if column.name == "customer_id"
        and not any(fk.column.table.name == "customers" for fk in column.foreign_keys)
        and column.info.get("derived_from") != "customers.id"
    ]
    assert unguarded == []


def test_deleting_a_customer_deletes_their_derived_rows_and_those_of_customers_merged_into_them(
    db: Database,
) -> None:
    from kokyaku.customers import service as customers
    from kokyaku.customers.merge import merge_customers

    now = datetime.now(UTC)
    with db.session() as s:
        keep, gone, merged = (make_customer(s, name=f"客 {k}").id for k in "abc")
        for cid in (keep, gone, merged):
            make_order(s, customer_id=cid, at=now - timedelta(days=5))
    _run(db, now)
    with db.session() as s:
        # the merged customer keeps its derived rows until the next recomputation
        merge_customers(s, actor=TEST_ACTOR, survivor_id=gone, merged_id=merged)
    with db.session() as s:
        customers.delete_customer(s, actor=TEST_ACTOR, customer_id=gone)
    with db.session(write=False) as s:
        for model in (CustomerRfm, CustomerLifecycle, LifecycleChange):
            owners = set(s.scalars(select(model.customer_id)))
            assert owners == {keep}, model.__tablename__
