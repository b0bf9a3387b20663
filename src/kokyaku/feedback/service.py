"""The feedback domain's face to the others: the KPI summaries, each customer's latest NPS, the segment rule
fields, and the merge participant that moves a customer's surveys, reviews and follow-ups on a merge.

Importing this module registers the segment fields and the merge participant (kokyaku.domains imports it).
"""

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from kokyaku.customers.merge import (
    move_rows_many,
    register_merge_participant,
    register_merge_participant_batch,
)
from kokyaku.feedback import segment_fields
from kokyaku.feedback.models import Followup, Invitation, Response, Review
from kokyaku.feedback.scores import csat_summary, latest_nps, nps_category, nps_summary, recompute_scores

__all__ = ["csat_summary", "latest_nps", "nps_category", "nps_summary"]

_MOVED = (Invitation, Response, Review, Followup)
_ID_CHUNK = 5000


def _move(session: Session, from_id: int, to_id: int) -> dict[str, list[int]]:
    """Merge: the merged customer's links, responses, reviews and follow-ups now belong to the survivor."""
    moved: dict[str, list[int]] = {}
    for model in _MOVED:
        stmt: Any = (
            update(model)
            .where(model.customer_id == from_id)
            .values(customer_id=to_id)
            .returning(model.id)
            .execution_options(synchronize_session=False)
        )
        moved[model.__tablename__] = sorted(session.scalars(stmt))
    recompute_scores(session, [from_id, to_id])
    return moved


def _move_back(session: Session, from_id: int, to_id: int, moved: dict[str, list[int]]) -> None:
    """Undo: exactly the rows the merge moved go back to the customer they came from."""
    for model in _MOVED:
        ids = list(moved.get(model.__tablename__, []))
        for i in range(0, len(ids), _ID_CHUNK):
            session.execute(
                update(model)
                .where(model.id.in_(ids[i : i + _ID_CHUNK]), model.customer_id == to_id)
                .values(customer_id=from_id)
                .execution_options(synchronize_session=False)
            )
    recompute_scores(session, [from_id, to_id])


def _move_many(session: Session, pairs: list[tuple[int, int]]) -> list[dict[str, list[int]]]:
    """_move for many pairs at once (ingestion's stitching), as if run one pair after another."""
    moved = move_rows_many(session, _MOVED, pairs)
    recompute_scores(session, sorted({i for pair in pairs for i in pair}))
    return moved


register_merge_participant("feedback", _move, _move_back)
register_merge_participant_batch("feedback", _move_many)
segment_fields.register()
