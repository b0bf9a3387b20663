"""RFM + lifecycle recomputation for every customer: one SELECT of customer_metrics, numpy in between, and
batched writes of only the rows that changed. Run daily by the job schedule and on demand."""

import time as _time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from kokyaku.commerce.models import CustomerMetrics
from kokyaku.customers.models import Customer
from kokyaku.db import utcnow
from kokyaku.kit.bulk import (
    FillColumn,
    Labels,
    Micros,
    delete_keys,
    fill_empty,
    insert_tuples,
    python_values,
    read_packed,
    upsert,
)
from kokyaku.segments import bulk, lifecycle, rfm
from kokyaku.segments.lifecycle import ALIVE_SOURCES, DAY_US, LEAD, STAGES, LifecycleRules
from kokyaku.segments.models import CustomerLifecycle, CustomerRfm, LifecycleChange, RecomputeRun
from kokyaku.segments.rfm import RFM_SEGMENTS

_MIN_US = np.iinfo(np.int64).min
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RFM_CODES = {name: i for i, name in enumerate(RFM_SEGMENTS)}
_STAGE_CODES = {name: i for i, name in enumerate(STAGES)}


def _us(value: datetime) -> int:
    """Microseconds since the epoch, exactly (a float timestamp can be a microsecond off)."""
    return (value - _EPOCH) // timedelta(microseconds=1)


def recompute_all(
    session: Session, *, rules: LifecycleRules, tz: str = "Asia/Tokyo", now: datetime | None = None,
    trigger: str = "manual",
) -> RecomputeRun:  # fmt: skip
    """Rescore RFM and re-derive lifecycle stages for all customers; write what changed; record the run."""
    started = _time.perf_counter()
    now = now or utcnow()
    bulk.lock(session, "kokyaku.segments.recompute")
    bulk.analytics_memory(session)
    now_us = _us(now)
    offset_us = int(now.astimezone(ZoneInfo(tz)).utcoffset().total_seconds()) * 1_000_000  # type: ignore[union-attr]
    today = (now_us + offset_us) // DAY_US

    ids, orders, first_us, last_us, spend = _read_metrics(session)
    days_since = today - (last_us + offset_us) // DAY_US
    scores = rfm.score(days_since, orders, spend)
    rfm_written = _write_rfm(session, ids, scores, now)

    alive = _alive(session, ids)
    stage, changes = _write_lifecycle(session, ids, orders, first_us, last_us, days_since, alive, now, rules)

    total = session.scalar(select(func.count()).select_from(Customer)) or 0
    stage_counts = np.bincount(stage, minlength=len(STAGES)).astype(int)
    stage_counts[LEAD] = total - len(ids)
    seg_codes = scores.segment.astype(np.int64)
    summary = {
        "bounds": scores.bounds,
        "grid": rfm.grid(scores.r, scores.f, spend),
        "segments": {
            name: [int(c), round(v)]
            for name, c, v in zip(
                RFM_SEGMENTS,
                np.bincount(seg_codes, minlength=len(RFM_SEGMENTS)),
                np.bincount(seg_codes, weights=spend.astype(np.float64), minlength=len(RFM_SEGMENTS)),
                strict=True,
            )
        },
        "stages": {name: int(c) for name, c in zip(STAGES, stage_counts, strict=True)},
        "rules": asdict(rules),
    }
    run = RecomputeRun(
        trigger=trigger,
        started_at=now,
        finished_at=utcnow(),
        seconds=round(_time.perf_counter() - started, 3),
        customers=int(total),
        active=len(ids),
        rfm_written=rfm_written,
        stage_changes=changes,
        summary=summary,
    )
    session.add(run)
    session.flush()
    return run


# A buyer's metrics as PostgreSQL packs them: id, orders, first and last order (us since the epoch), spend.
_PACKED_METRICS = np.dtype([(n, ">i8") for n in ("id", "orders", "first_us", "last_us", "spend")])
_PACKED_METRICS_SQL = text(
    """
    SELECT string_agg(
        int8send(customer_id::bigint) || int8send(order_count::bigint)
        || int8send(round(date_part('epoch', coalesce(first_order_at, last_order_at)) * 1000000)::bigint)
        || int8send(round(date_part('epoch', last_order_at) * 1000000)::bigint)
        || int8send(total_spend::bigint),
        ''::bytea
    )
    FROM customer_metrics
    WHERE order_count > 0 AND last_order_at IS NOT NULL
    GROUP BY customer_id / 20000
    """
)


def _read_metrics(session: Session) -> tuple[np.ndarray, ...]:
    """(ids, orders, first_us, last_us, spend) of every customer with at least one purchase, by id."""
    if bulk.dialect(session) == "postgresql":
        packed = read_packed(session, _PACKED_METRICS_SQL, {}, _PACKED_METRICS)
        packed = packed[np.argsort(packed["id"], kind="stable")]
        return tuple(packed[n].astype(np.int64) for n in _PACKED_METRICS.names)  # type: ignore[union-attr]
    m = CustomerMetrics
    stmt = (
        select(
            m.customer_id,
            m.order_count,
            bulk.datetime_text(m.first_order_at),
            bulk.datetime_text(m.last_order_at),
            m.total_spend,
        )
        .where(m.order_count > 0, m.last_order_at.is_not(None))
        .order_by(m.customer_id)
    )
    cols = bulk.read_columns(session, stmt)
    ids = np.array(cols[0], dtype=np.int64)
    orders = np.array(cols[1], dtype=np.int64)
    last_us = bulk.db_to_us(cols[3])
    first_us = bulk.db_to_us(cols[2])
    first_us = np.where(first_us == _MIN_US, last_us, first_us)
    spend = np.array(cols[4], dtype=np.int64)
    return ids, orders, first_us, last_us, spend


def _align(ids: np.ndarray, existing_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of `ids` (sorted): its position in `existing_ids` (sorted) and whether it is there."""
    if len(existing_ids) == 0:
        return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
    pos = np.searchsorted(existing_ids, ids)
    pos_clipped = np.minimum(pos, len(existing_ids) - 1)
    return pos_clipped, existing_ids[pos_clipped] == ids


def _write_rfm(session: Session, ids: np.ndarray, scores: rfm.RfmResult, now: datetime) -> int:
    """Upsert the rows whose scores changed; delete the rows of customers with no purchase any more."""
    t = CustomerRfm
    cols = bulk.read_columns(session, select(t.customer_id, t.r, t.f, t.m, t.segment).order_by(t.customer_id))
    old_ids = np.array(cols[0] if cols else (), dtype=np.int64)
    pos, found = _align(ids, old_ids)
    changed = ~found
    if len(old_ids):
        old_r, old_f, old_m = (np.array(c, dtype=np.int8) for c in cols[1:4])
        old_seg = np.array([_RFM_CODES.get(s, -1) for s in cols[4]], dtype=np.int8)
        changed |= (old_r[pos] != scores.r) | (old_f[pos] != scores.f) | (old_m[pos] != scores.m)
        changed |= old_seg[pos] != scores.segment
        gone = old_ids[~np.isin(old_ids, ids, assume_unique=True)]
        delete_keys(session, t.__table__, "customer_id", gone.tolist())  # type: ignore[arg-type]
    idx = np.flatnonzero(changed)
    fill: dict[str, FillColumn] = {
        "customer_id": ids[idx], "r": scores.r[idx], "f": scores.f[idx], "m": scores.m[idx],
        "segment": Labels(scores.segment[idx], RFM_SEGMENTS),
        "computed_at": Micros(np.full(len(idx), _us(now))),
    }  # fmt: skip
    # the first run fills the empty table with every buyer; later runs write the few changes
    if len(old_ids) or not fill_empty(session, t.__table__, fill):  # type: ignore[arg-type]
        upsert(session, t.__table__, "customer_id", list(fill), _tuples(fill))  # type: ignore[arg-type]
    return len(idx)


def _alive(session: Session, ids: np.ndarray) -> np.ndarray | None:
    """The lowest probability-still-active any registered source gives (None when no source is registered)."""
    result: np.ndarray | None = None
    for source in ALIVE_SOURCES:
        p = source(session, ids)
        if p is not None:
            result = p if result is None else np.fmin(result, p)
    return result


def _write_lifecycle(
    session: Session, ids: np.ndarray, orders: np.ndarray, first_us: np.ndarray, last_us: np.ndarray,
    days_since: np.ndarray, alive: np.ndarray | None, now: datetime, rules: LifecycleRules,
) -> tuple[np.ndarray, int]:  # fmt: skip
    """Classify every buyer; write the stage of those whose stage changed and one history row per change.
    Customers who have no purchase any more (all orders cancelled) go back to lead."""
    t = CustomerLifecycle
    cols = bulk.read_columns(
        session, select(t.customer_id, t.stage, bulk.datetime_text(t.since)).order_by(t.customer_id)
    )
    old_ids = np.array(cols[0] if cols else (), dtype=np.int64)
    old_stage = np.array([_STAGE_CODES.get(s, LEAD) for s in (cols[1] if cols else ())], dtype=np.int8)
    old_since = bulk.db_to_us(cols[2]) if cols else np.zeros(0, dtype=np.int64)
    pos, found = _align(ids, old_ids)
    prev_stage = np.where(found, old_stage[pos] if len(old_ids) else LEAD, LEAD).astype(np.int8)
    prev_since = np.where(found, old_since[pos] if len(old_ids) else _MIN_US, _MIN_US)
    now_us = _us(now)
    result = lifecycle.classify(
        orders=orders,
        first_us=first_us,
        last_us=last_us,
        days_since_last=days_since,
        prev_stage=prev_stage,
        prev_since_us=prev_since,
        now_us=now_us,
        rules=rules,
        alive=alive,
    )
    changed = np.flatnonzero(result.stage != prev_stage)
    change_ids = ids[changed]
    change_to = result.stage[changed]
    change_from = prev_stage[changed]
    change_at = result.changed_at[changed]

    # buyers no more: a row whose customer is not among the buyers and is not lead already
    if len(old_ids):
        lapsed = ~np.isin(old_ids, ids, assume_unique=True) & (old_stage != LEAD)
        n_lapsed = int(lapsed.sum())
        change_ids = np.concatenate([change_ids, old_ids[lapsed]])
        change_to = np.concatenate([change_to, np.full(n_lapsed, LEAD, dtype=np.int8)])
        change_from = np.concatenate([change_from, old_stage[lapsed]])
        change_at = np.concatenate([change_at, np.maximum(np.full(n_lapsed, now_us), old_since[lapsed])])

    # The first run fills empty tables (every buyer changes from lead); later runs write the few changes.
    stages: dict[str, FillColumn] = {
        "customer_id": change_ids, "stage": Labels(change_to, STAGES), "since": Micros(change_at),
        "computed_at": Micros(np.full(len(change_ids), now_us)),
    }  # fmt: skip
    history: dict[str, FillColumn] = {
        "customer_id": change_ids, "stage": Labels(change_to, STAGES),
        "from_stage": Labels(change_from, STAGES), "changed_at": Micros(change_at),
    }  # fmt: skip
    if len(old_ids) or not fill_empty(session, t.__table__, stages):  # type: ignore[arg-type]
        upsert(session, t.__table__, "customer_id", list(stages), _tuples(stages))  # type: ignore[arg-type]
    if not fill_empty(session, LifecycleChange.__table__, history):  # type: ignore[arg-type]
        insert_tuples(session, LifecycleChange.__table__, list(history), _tuples(history))  # type: ignore[arg-type]
    return result.stage, len(change_ids)


def _tuples(columns: dict[str, FillColumn]) -> list[tuple[Any, ...]]:
    """Fill columns as the row tuples of the usual writers."""
    return list(zip(*(python_values(c) for c in columns.values()), strict=True))


def latest_run(session: Session) -> RecomputeRun | None:
    return session.scalar(select(RecomputeRun).order_by(RecomputeRun.id.desc()).limit(1))
