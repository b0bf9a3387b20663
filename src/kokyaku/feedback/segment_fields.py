"""Segment rule fields from the customers' latest NPS answer ("detractors in the last 90 days" is
nps_category = detractor and nps_answered_at in the last 90 days)."""

from kokyaku.customers.models import Customer
from kokyaku.feedback.models import CustomerScore
from kokyaku.feedback.scores import NPS_CATEGORIES
from kokyaku.segments.rules import DATE, ENUM, NUMBER, FieldSpec, register_field, register_join

JOIN = "feedback_scores"
SCORE_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between", "not_between", "is_empty", "is_not_empty")


def register() -> None:
    """Add the fields (idempotent: registering again replaces them)."""
    register_join(JOIN, CustomerScore, lambda: CustomerScore.customer_id == Customer.id)
    register_field(
        FieldSpec(
            key="nps_last_score",
            label="Latest NPS score",
            category="behavioural",
            kind=NUMBER,
            operators=SCORE_OPS,
            column=lambda _c: CustomerScore.nps_score,
            joins=(JOIN,),
            integer=True,
            minimum=0,
            maximum=10,
        )
    )
    register_field(
        FieldSpec(
            key="nps_category",
            label="Latest NPS category",
            category="behavioural",
            kind=ENUM,
            column=lambda _c: CustomerScore.nps_category,
            joins=(JOIN,),
            choices=lambda: NPS_CATEGORIES,
        )
    )
    register_field(
        FieldSpec(
            key="nps_answered_at",
            label="Latest NPS answer",
            category="behavioural",
            kind=DATE,
            column=lambda _c: CustomerScore.nps_answered_at,
            joins=(JOIN,),
        )
    )
