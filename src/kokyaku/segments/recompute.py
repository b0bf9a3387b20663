"""RFM + lifecycle recomputation for every customer: one SELECT of customer_metrics, numpy in between, and
batched writes of only the rows that changed. Run daily by the job schedule and on demand."""

import time as _time
from dataclasses import asdict
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kokyaku.commerce.models import CustomerMetrics
from kokyaku.customers.models import Customer
from kokyaku.db import utcnow
from kokyaku.kit.bulk import delete_keys, fill_empty, insert_tuples, upsert
from kokyaku.segments import bulk, lifecycle, rfm
from kokyaku.segments.lifecycle import ALIVE_SOURCES, DAY_US, LEAD, STAGES, LifecycleRules
from kokyaku.segments.models import CustomerLifecycle, CustomerRfm, LifecycleChange, RecomputeRun
from kokyaku.segments.rfm import RFM_SEGMENTS

_MIN_US = np.iinfo(np.int64).min
_RFM_CODES = {name: i for i, name in enumerate(RFM_SEGMENTS)}
_STAGE_CODES = {name: i for i, name in enumerate(STAGES)}


def _us(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


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


def _read_metrics(session: Session) -> tuple[np.ndarray, ...]:
    """(ids, orders, first_us, last_us, spend) of every customer with at least one purchase, by id."""
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
    stamp = bulk.db_datetime(now)
    names = [RFM_SEGMENTS[c] for c in scores.segment[idx].tolist()]
    rows = list(
        zip(
            ids[idx].tolist(),
            scores.r[idx].tolist(),
            scores.f[idx].tolist(),
            scores.m[idx].tolist(),
            names,
            [stamp] * len(idx),
            strict=True,
        )
    )
    cols_out = ["customer_id", "r", "f", "m", "segment", "computed_at"]
    if len(old_ids) or not fill_empty(session, t.__table__, cols_out, rows):  # type: ignore[arg-type]
        upsert(session, t.__table__, "customer_id", cols_out, rows)  # type: ignore[arg-type]
    return len(rows)


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

    stamp = bulk.db_datetime(now)
    at_text = bulk.us_to_db(change_at)
    id_list = change_ids.tolist()
    to_names = [STAGES[c] for c in change_to.tolist()]
    from_names = [STAGES[c] for c in change_from.tolist()]
    # the first run fills empty tables (every buyer changes from lead); later runs write the few changes
    stages, stage_cols = t.__table__, ["customer_id", "stage", "since", "computed_at"]
    rows = list(zip(id_list, to_names, at_text, [stamp] * len(id_list), strict=True))
    if len(old_ids) or not fill_empty(session, stages, stage_cols, rows):  # type: ignore[arg-type]
        upsert(session, stages, "customer_id", stage_cols, rows)  # type: ignore[arg-type]
    changes, change_cols = LifecycleChange.__table__, ["customer_id", "stage", "from_stage", "changed_at"]
    rows = list(zip(id_list, to_names, from_names, at_text, strict=True))
    if not fill_empty(session, changes, change_cols, rows):  # type: ignore[arg-type]
        insert_tuples(session, changes, change_cols, rows)  # type: ignore[arg-type]
    return result.stage, len(id_list)


def latest_run(session: Session) -> RecomputeRun | None:
    return session.scalar(select(RecomputeRun).order_by(RecomputeRun.id.desc()).limit(1))
