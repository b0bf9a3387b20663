"""feedback

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kokyaku.db  # noqa: F401

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback_topic_mentions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_type", sa.String(length=10), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=True),
        sa.Column("topic", sa.String(length=20), nullable=False),
        sa.Column("sentiment", sa.String(length=8), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_topic_mentions")),
    )
    with op.batch_alter_table("feedback_topic_mentions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_feedback_topic_mentions_kind_day", ["source_type", "day", "topic", "sentiment"], unique=False
        )
        batch_op.create_index("ix_feedback_topic_mentions_source", ["source_type", "source_id"], unique=False)
        batch_op.create_index(
            "ix_feedback_topic_mentions_survey_topic", ["survey_id", "topic", "source_id"], unique=False
        )

    op.create_table(
        "survey_submit_hits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("at", kokyaku.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_submit_hits")),
    )
    with op.batch_alter_table("survey_submit_hits", schema=None) as batch_op:
        batch_op.create_index("ix_survey_submit_hits_at", ["at"], unique=False)
        batch_op.create_index("ix_survey_submit_hits_key_at", ["key", "at"], unique=False)

    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("title_ja", sa.String(length=200), nullable=False),
        sa.Column("title_en", sa.String(length=200), nullable=False),
        sa.Column("thank_you_ja", sa.String(length=2000), nullable=False),
        sa.Column("thank_you_en", sa.String(length=2000), nullable=False),
        sa.Column("public_slug", sa.String(length=32), nullable=False),
        sa.Column("public_enabled", sa.Boolean(), nullable=False),
        sa.Column("link_days", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", kokyaku.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", kokyaku.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_surveys_created_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
        sa.UniqueConstraint("public_slug", name=op.f("uq_surveys_public_slug")),
    )
    op.create_table(
        "feedback_customer_scores",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("nps_score", sa.SmallInteger(), nullable=False),
        sa.Column("nps_category", sa.String(length=10), nullable=False),
        sa.Column("nps_answered_at", kokyaku.db.UTCDateTime(), nullable=False),
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_feedback_customer_scores_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_feedback_customer_scores")),
    )
    with op.batch_alter_table("feedback_customer_scores", schema=None) as batch_op:
        batch_op.create_index(
            "ix_feedback_customer_scores_category_at", ["nps_category", "nps_answered_at"], unique=False
        )

    op.create_table(
        "feedback_followups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("source_type", sa.String(length=10), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("resolution", sa.String(length=2000), nullable=True),
        sa.Column("created_at", kokyaku.db.UTCDateTime(), nullable=False),
        sa.Column("closed_at", kokyaku.db.UTCDateTime(), nullable=True),
        sa.Column("closed_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["closed_by"],
            ["users.id"],
            name=op.f("fk_feedback_followups_closed_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_feedback_followups_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_feedback_followups_owner_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_followups")),
        sa.UniqueConstraint("source_type", "source_id", name="uq_feedback_followups_source"),
    )
    with op.batch_alter_table("feedback_followups", schema=None) as batch_op:
        batch_op.create_index("ix_feedback_followups_customer_id", ["customer_id"], unique=False)
        batch_op.create_index(
            "ix_feedback_followups_owner_status_due", ["owner_id", "status", "due_on", "id"], unique=False
        )
        batch_op.create_index("ix_feedback_followups_status_due", ["status", "due_on", "id"], unique=False)

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=True),
        sa.Column("text", sa.String(length=5000), nullable=True),
        sa.Column("author", sa.String(length=200), nullable=True),
        sa.Column("posted_at", kokyaku.db.UTCDateTime(), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("link_method", sa.String(length=10), nullable=True),
        sa.Column("lang", sa.String(length=2), nullable=True),
        sa.Column("sentiment", sa.String(length=8), nullable=True),
        sa.Column("sentiment_score", sa.Float(), nullable=True),
        sa.Column("phrases", sa.JSON(), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("negative", sa.Boolean(), nullable=False),
        sa.Column("alert", sa.Boolean(), nullable=False),
        sa.Column("acknowledged_at", kokyaku.db.UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.Integer(), nullable=True),
        sa.Column("created_at", kokyaku.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", kokyaku.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["acknowledged_by"],
            ["users.id"],
            name=op.f("fk_reviews_acknowledged_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_reviews_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("source", "external_id", name="uq_reviews_source_external_id"),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index("ix_reviews_alert_posted", ["alert", "posted_at"], unique=False)
        batch_op.create_index("ix_reviews_customer_id", ["customer_id"], unique=False)
        batch_op.create_index("ix_reviews_posted_at", ["posted_at"], unique=False)
        batch_op.create_index("ix_reviews_source_posted", ["source", "posted_at", "rating"], unique=False)

    op.create_table(
        "survey_daily_stats",
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("dim", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("nps_0", sa.Integer(), nullable=False),
        sa.Column("nps_1", sa.Integer(), nullable=False),
        sa.Column("nps_2", sa.Integer(), nullable=False),
        sa.Column("nps_3", sa.Integer(), nullable=False),
        sa.Column("nps_4", sa.Integer(), nullable=False),
        sa.Column("nps_5", sa.Integer(), nullable=False),
        sa.Column("nps_6", sa.Integer(), nullable=False),
        sa.Column("nps_7", sa.Integer(), nullable=False),
        sa.Column("nps_8", sa.Integer(), nullable=False),
        sa.Column("nps_9", sa.Integer(), nullable=False),
        sa.Column("nps_10", sa.Integer(), nullable=False),
        sa.Column("csat_1", sa.Integer(), nullable=False),
        sa.Column("csat_2", sa.Integer(), nullable=False),
        sa.Column("csat_3", sa.Integer(), nullable=False),
        sa.Column("csat_4", sa.Integer(), nullable=False),
        sa.Column("csat_5", sa.Integer(), nullable=False),
        sa.Column("ces_1", sa.Integer(), nullable=False),
        sa.Column("ces_2", sa.Integer(), nullable=False),
        sa.Column("ces_3", sa.Integer(), nullable=False),
        sa.Column("ces_4", sa.Integer(), nullable=False),
        sa.Column("ces_5", sa.Integer(), nullable=False),
        sa.Column("ces_6", sa.Integer(), nullable=False),
        sa.Column("ces_7", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys.id"],
            name=op.f("fk_survey_daily_stats_survey_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("survey_id", "dim", "key", "day", name=op.f("pk_survey_daily_stats")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("survey_daily_stats", schema=None) as batch_op:
        batch_op.create_index("ix_survey_daily_stats_dim_day", ["dim", "day"], unique=False)

    op.create_table(
        "survey_invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("sent_at", kokyaku.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", kokyaku.db.UTCDateTime(), nullable=False),
        sa.Column("used_at", kokyaku.db.UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_survey_invitations_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_survey_invitations_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys.id"],
            name=op.f("fk_survey_invitations_survey_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_invitations")),
    )
    with op.batch_alter_table("survey_invitations", schema=None) as batch_op:
        batch_op.create_index("ix_survey_invitations_customer_id", ["customer_id"], unique=False)
        batch_op.create_index("ix_survey_invitations_survey_used", ["survey_id", "used_at"], unique=False)

    op.create_table(
        "survey_questions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("text_ja", sa.String(length=500), nullable=False),
        sa.Column("text_en", sa.String(length=500), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys.id"],
            name=op.f("fk_survey_questions_survey_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_questions")),
    )
    with op.batch_alter_table("survey_questions", schema=None) as batch_op:
        batch_op.create_index("ix_survey_questions_survey_position", ["survey_id", "position"], unique=False)

    op.create_table(
        "survey_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("invitation_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("locale", sa.String(length=5), nullable=False),
        sa.Column("submitted_at", kokyaku.db.UTCDateTime(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("nps_score", sa.SmallInteger(), nullable=True),
        sa.Column("csat_score", sa.SmallInteger(), nullable=True),
        sa.Column("ces_score", sa.SmallInteger(), nullable=True),
        sa.Column("nonce", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_survey_responses_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["survey_invitations.id"],
            name=op.f("fk_survey_responses_invitation_id_survey_invitations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys.id"],
            name=op.f("fk_survey_responses_survey_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_responses")),
        sa.UniqueConstraint("invitation_id", name=op.f("uq_survey_responses_invitation_id")),
        sa.UniqueConstraint("nonce", name=op.f("uq_survey_responses_nonce")),
    )
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.create_index(
            "ix_survey_responses_at_scores", ["submitted_at", "nps_score", "csat_score"], unique=False
        )
        batch_op.create_index(
            "ix_survey_responses_customer_at", ["customer_id", "submitted_at"], unique=False
        )
        batch_op.create_index(
            "ix_survey_responses_survey_day_scores",
            ["survey_id", "day", "nps_score", "csat_score", "ces_score", "customer_id"],
            unique=False,
        )

    op.create_table(
        "survey_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("value_int", sa.SmallInteger(), nullable=True),
        sa.Column("has_text", sa.Boolean(), nullable=False),
        sa.Column("text", sa.String(length=2000), nullable=True),
        sa.Column("lang", sa.String(length=2), nullable=True),
        sa.Column("sentiment", sa.String(length=8), nullable=True),
        sa.Column("sentiment_score", sa.Float(), nullable=True),
        sa.Column("phrases", sa.JSON(), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["survey_questions.id"],
            name=op.f("fk_survey_answers_question_id_survey_questions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["survey_responses.id"],
            name=op.f("fk_survey_answers_response_id_survey_responses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_answers")),
    )
    with op.batch_alter_table("survey_answers", schema=None) as batch_op:
        batch_op.create_index("ix_survey_answers_question_value", ["question_id", "value_int"], unique=False)
        batch_op.create_index("ix_survey_answers_response_id", ["response_id"], unique=False)
        batch_op.create_index(
            "ix_survey_answers_survey_comments", ["survey_id", "has_text", "id"], unique=False
        )
        batch_op.create_index("ix_survey_answers_survey_sentiment", ["survey_id", "sentiment"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("survey_answers", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_answers_survey_sentiment")
        batch_op.drop_index("ix_survey_answers_survey_comments")
        batch_op.drop_index("ix_survey_answers_response_id")
        batch_op.drop_index("ix_survey_answers_question_value")

    op.drop_table("survey_answers")
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_responses_survey_day_scores")
        batch_op.drop_index("ix_survey_responses_customer_at")
        batch_op.drop_index("ix_survey_responses_at_scores")

    op.drop_table("survey_responses")
    with op.batch_alter_table("survey_questions", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_questions_survey_position")

    op.drop_table("survey_questions")
    with op.batch_alter_table("survey_invitations", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_invitations_survey_used")
        batch_op.drop_index("ix_survey_invitations_customer_id")

    op.drop_table("survey_invitations")
    with op.batch_alter_table("survey_daily_stats", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_daily_stats_dim_day")

    op.drop_table("survey_daily_stats")
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_reviews_source_posted")
        batch_op.drop_index("ix_reviews_posted_at")
        batch_op.drop_index("ix_reviews_customer_id")
        batch_op.drop_index("ix_reviews_alert_posted")

    op.drop_table("reviews")
    with op.batch_alter_table("feedback_followups", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_followups_status_due")
        batch_op.drop_index("ix_feedback_followups_owner_status_due")
        batch_op.drop_index("ix_feedback_followups_customer_id")

    op.drop_table("feedback_followups")
    with op.batch_alter_table("feedback_customer_scores", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_customer_scores_category_at")

    op.drop_table("feedback_customer_scores")
    op.drop_table("surveys")
    with op.batch_alter_table("survey_submit_hits", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_submit_hits_key_at")
        batch_op.drop_index("ix_survey_submit_hits_at")

    op.drop_table("survey_submit_hits")
    with op.batch_alter_table("feedback_topic_mentions", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_topic_mentions_survey_topic")
        batch_op.drop_index("ix_feedback_topic_mentions_source")
        batch_op.drop_index("ix_feedback_topic_mentions_kind_day")

    op.drop_table("feedback_topic_mentions")
