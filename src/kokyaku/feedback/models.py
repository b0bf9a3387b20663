"""Surveys and their questions, invitations (personal links), responses and answers, reviews, follow-up tasks,
per-customer latest scores, topic mentions for the charts, and the public link's submission throttle."""

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

import kokyaku.auth.models  # noqa: F401  (users, referred to by owners and authors)
import kokyaku.customers.models  # noqa: F401  (customers)
from kokyaku.db import Base, UTCDateTime, utcnow

DRAFT, OPEN, CLOSED = "draft", "open", "closed"
SURVEY_STATUSES = (DRAFT, OPEN, CLOSED)
NPS, CSAT, CES = "nps", "csat", "ces"
SINGLE, MULTIPLE, TEXT = "single_choice", "multiple_choice", "text"
QUESTION_KINDS = (NPS, CSAT, CES, SINGLE, MULTIPLE, TEXT)
# the inclusive range of each scale question
SCALES: dict[str, tuple[int, int]] = {NPS: (0, 10), CSAT: (1, 5), CES: (1, 7)}
INVITATION_CHANNELS = ("email", "link")
RESPONSE_CHANNELS = ("email", "link", "public")
REVIEW_SOURCES = ("google", "tabelog", "amazon", "rakuten", "instagram", "x", "facebook", "yahoo", "other")
SENTIMENTS = ("positive", "neutral", "negative")
FOLLOWUP_OPEN, FOLLOWUP_CLOSED = "open", "closed"
FOLLOWUP_SOURCES = ("response", "review")


class Survey(Base):
    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))  # internal name, shown to staff
    status: Mapped[str] = mapped_column(String(10), default=DRAFT)
    # the heading and closing words customers see, in both languages
    title_ja: Mapped[str] = mapped_column(String(200), default="")
    title_en: Mapped[str] = mapped_column(String(200), default="")
    thank_you_ja: Mapped[str] = mapped_column(String(2000), default="")
    thank_you_en: Mapped[str] = mapped_column(String(2000), default="")
    # the anonymous public link /s/<public_slug>; random, so that surveys cannot be enumerated
    public_slug: Mapped[str] = mapped_column(String(32), unique=True)
    public_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    link_days: Mapped[int] = mapped_column(Integer, default=30)  # lifetime of personal links
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Question(Base):
    __tablename__ = "survey_questions"
    __table_args__ = (Index("ix_survey_questions_survey_position", "survey_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    text_ja: Mapped[str] = mapped_column(String(500))
    text_en: Mapped[str] = mapped_column(String(500))
    required: Mapped[bool] = mapped_column(Boolean, default=True)
    # choice questions: [{"ja": ..., "en": ...}, ...]; an answer stores the index
    choices: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)


class Invitation(Base):
    """A personal link: one customer, one survey, usable once until it expires."""

    __tablename__ = "survey_invitations"
    __table_args__ = (
        # response rate: invitations and used ones per survey, from the index alone
        Index("ix_survey_invitations_survey_used", "survey_id", "used_at"),
        Index("ix_survey_invitations_customer_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(10))  # email | link (copied by staff)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Response(Base):
    """One submitted survey. The first NPS, CSAT and CES answers and the local day are copied here
    (denormalised), so that the figures of a segment's answers are one GROUP BY over one covering index."""

    __tablename__ = "survey_responses"
    __table_args__ = (
        Index(
            "ix_survey_responses_survey_day_scores",
            "survey_id",
            "day",
            "nps_score",
            "csat_score",
            "ces_score",
            "customer_id",
        ),
        # the KPI board: all surveys in a period
        Index("ix_survey_responses_at_scores", "submitted_at", "nps_score", "csat_score"),
        Index("ix_survey_responses_customer_at", "customer_id", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    # unique: a personal link answers once, even when two submits race (a double click)
    invitation_id: Mapped[int | None] = mapped_column(
        ForeignKey("survey_invitations.id", ondelete="SET NULL"), unique=True
    )
    # a deleted customer's answers stay in the figures, without the link to the person
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(10))
    locale: Mapped[str] = mapped_column(String(5))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    day: Mapped[date] = mapped_column(Date)  # submitted_at's date in the business time zone
    nps_score: Mapped[int | None] = mapped_column(SmallInteger)
    csat_score: Mapped[int | None] = mapped_column(SmallInteger)
    ces_score: Mapped[int | None] = mapped_column(SmallInteger)
    # the public form's one-time token: unique, so a double submit of the same form counts once
    nonce: Mapped[str | None] = mapped_column(String(64), unique=True)


class Answer(Base):
    """One answer: a scale value, one chosen option (a multiple choice answer is one row per option), or a
    comment with what the text analysis found in it."""

    __tablename__ = "survey_answers"
    __table_args__ = (
        Index("ix_survey_answers_response_id", "response_id"),
        # distributions of choice and extra scale questions
        Index("ix_survey_answers_question_value", "question_id", "value_int"),
        # newest comments first, and comments by sentiment
        Index("ix_survey_answers_survey_comments", "survey_id", "has_text", "id"),
        Index("ix_survey_answers_survey_sentiment", "survey_id", "sentiment"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("survey_responses.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("survey_questions.id", ondelete="CASCADE"))
    survey_id: Mapped[int] = mapped_column(Integer)  # copied from the response, for the indexes
    value_int: Mapped[int | None] = mapped_column(SmallInteger)
    has_text: Mapped[bool] = mapped_column(Boolean, default=False)
    text: Mapped[str | None] = mapped_column(String(2000))
    lang: Mapped[str | None] = mapped_column(String(2))
    sentiment: Mapped[str | None] = mapped_column(String(8))
    sentiment_score: Mapped[float | None] = mapped_column(Float)
    phrases: Mapped[list[str]] = mapped_column(JSON, default=list)
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)


class TopicMention(Base):
    """One topic found in one comment or review, with its sentiment: comments are filtered by topic and the
    reviews' topic charts group these rows (in index order) instead of unpacking JSON."""

    __tablename__ = "feedback_topic_mentions"
    __table_args__ = (
        Index("ix_feedback_topic_mentions_survey_topic", "survey_id", "topic", "source_id"),
        Index("ix_feedback_topic_mentions_kind_day", "source_type", "day", "topic", "sentiment"),
        Index("ix_feedback_topic_mentions_source", "source_type", "source_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_type: Mapped[str] = mapped_column(String(10))  # answer | review
    source_id: Mapped[int] = mapped_column(Integer)
    survey_id: Mapped[int | None] = mapped_column(Integer)
    topic: Mapped[str] = mapped_column(String(20))
    sentiment: Mapped[str] = mapped_column(String(8))
    day: Mapped[date] = mapped_column(Date)  # local day of the answer or of the review


# The counters of one survey_daily_stats row: responses, then answers per value of each scale.
STAT_COUNTERS = (
    "n",
    *(f"nps_{v}" for v in range(11)),
    *(f"csat_{v}" for v in range(1, 6)),
    *(f"ces_{v}" for v in range(1, 8)),
)


class DailyStat(Base):
    """A survey's answers counted per local day, kept current in the same transaction as each response, so
    that the results page reads a few hundred rows however many responses there are.

    dim "all" (key ""): every response; "channel" / "stage": by the customer's acquisition channel and
    lifecycle stage when they answered; "choice" (key "<question id>:<value>"): answers by option of the
    choice questions and by value of any scale question after the first of its kind (only `n`); "topic"
    (key "<topic>:<sentiment>"): topics of the comments (only `n`), added when a comment is analysed;
    "invited" (key "": made, "used": answered since): personal links by the local day they were sent, so
    that the response rate does not count a survey's links (only `n`)."""

    __tablename__ = "survey_daily_stats"
    # without rowid on SQLite: rows are stored in key order, so a survey's days are read in one sweep
    __table_args__ = (Index("ix_survey_daily_stats_dim_day", "dim", "day"), {"sqlite_with_rowid": False})

    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), primary_key=True)
    dim: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)
    nps_0: Mapped[int] = mapped_column(Integer, default=0)
    nps_1: Mapped[int] = mapped_column(Integer, default=0)
    nps_2: Mapped[int] = mapped_column(Integer, default=0)
    nps_3: Mapped[int] = mapped_column(Integer, default=0)
    nps_4: Mapped[int] = mapped_column(Integer, default=0)
    nps_5: Mapped[int] = mapped_column(Integer, default=0)
    nps_6: Mapped[int] = mapped_column(Integer, default=0)
    nps_7: Mapped[int] = mapped_column(Integer, default=0)
    nps_8: Mapped[int] = mapped_column(Integer, default=0)
    nps_9: Mapped[int] = mapped_column(Integer, default=0)
    nps_10: Mapped[int] = mapped_column(Integer, default=0)
    csat_1: Mapped[int] = mapped_column(Integer, default=0)
    csat_2: Mapped[int] = mapped_column(Integer, default=0)
    csat_3: Mapped[int] = mapped_column(Integer, default=0)
    csat_4: Mapped[int] = mapped_column(Integer, default=0)
    csat_5: Mapped[int] = mapped_column(Integer, default=0)
    ces_1: Mapped[int] = mapped_column(Integer, default=0)
    ces_2: Mapped[int] = mapped_column(Integer, default=0)
    ces_3: Mapped[int] = mapped_column(Integer, default=0)
    ces_4: Mapped[int] = mapped_column(Integer, default=0)
    ces_5: Mapped[int] = mapped_column(Integer, default=0)
    ces_6: Mapped[int] = mapped_column(Integer, default=0)
    ces_7: Mapped[int] = mapped_column(Integer, default=0)


class CustomerScore(Base):
    """The latest NPS answer of each customer: what segment rules ("detractors in the last 90 days") read."""

    __tablename__ = "feedback_customer_scores"
    __table_args__ = (Index("ix_feedback_customer_scores_category_at", "nps_category", "nps_answered_at"),)

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    nps_score: Mapped[int] = mapped_column(SmallInteger)
    nps_category: Mapped[str] = mapped_column(String(10))  # promoter | passive | detractor
    nps_answered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    response_id: Mapped[int] = mapped_column(Integer)


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (
        # idempotent imports: the same review of the same site is one row
        UniqueConstraint("source", "external_id", name="uq_reviews_source_external_id"),
        Index("ix_reviews_source_posted", "source", "posted_at", "rating"),
        Index("ix_reviews_alert_posted", "alert", "posted_at"),
        Index("ix_reviews_posted_at", "posted_at"),
        Index("ix_reviews_customer_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(200))
    rating: Mapped[int] = mapped_column(SmallInteger)
    title: Mapped[str | None] = mapped_column(String(300))
    text: Mapped[str | None] = mapped_column(String(5000))
    author: Mapped[str | None] = mapped_column(String(200))
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    url: Mapped[str | None] = mapped_column(String(1000))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    link_method: Mapped[str | None] = mapped_column(String(10))  # email | name | manual
    lang: Mapped[str | None] = mapped_column(String(2))
    sentiment: Mapped[str | None] = mapped_column(String(8))
    sentiment_score: Mapped[float | None] = mapped_column(Float)
    phrases: Mapped[list[str]] = mapped_column(JSON, default=list)
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    # rating <= 2, or rating 3 with negative text (reviews.is_negative)
    negative: Mapped[bool] = mapped_column(Boolean, default=False)
    alert: Mapped[bool] = mapped_column(Boolean, default=False)  # negative and not yet acknowledged
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Followup(Base):
    """Closing the loop: a detractor's answer or a negative review, to be followed up by the owner."""

    __tablename__ = "feedback_followups"
    __table_args__ = (
        # one task per answer or review, however often it is re-imported
        UniqueConstraint("source_type", "source_id", name="uq_feedback_followups_source"),
        Index("ix_feedback_followups_owner_status_due", "owner_id", "status", "due_on", "id"),
        Index("ix_feedback_followups_status_due", "status", "due_on", "id"),
        Index("ix_feedback_followups_customer_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    source_type: Mapped[str] = mapped_column(String(10))  # response | review
    source_id: Mapped[int] = mapped_column(Integer)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    due_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default=FOLLOWUP_OPEN)
    resolution: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class SubmitHit(Base):
    """One submission to a public survey link from one (hashed) address: the throttle's window, kept in the
    database so that it holds across processes."""

    __tablename__ = "survey_submit_hits"
    __table_args__ = (
        Index("ix_survey_submit_hits_key_at", "key", "at"),
        Index("ix_survey_submit_hits_at", "at"),  # the hourly purge (feedback/tasks.py)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
