"""Plain keyword-only factories for surveys and answers, through the real services."""

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from kokyaku.config import Settings
from kokyaku.customers.models import Customer
from kokyaku.feedback import responses, surveys
from kokyaku.feedback.models import Invitation, Survey
from kokyaku.feedback.schemas import SurveyIn, SurveyUpdate
from tests.conftest import TEST_ACTOR

NPS_Q = {"kind": "nps", "text_ja": "当店を友人にすすめますか？", "text_en": "Would you recommend us?"}
CSAT_Q = {"kind": "csat", "text_ja": "満足度は？", "text_en": "How satisfied are you?", "required": False}
CES_Q = {"kind": "ces", "text_ja": "手続きは簡単でしたか？", "text_en": "How easy was it?", "required": False}
CHOICE_Q = {
    "kind": "multiple_choice",
    "text_ja": "ご利用の店舗",
    "text_en": "Where did you shop?",
    "required": False,
    "choices": [{"ja": "渋谷店", "en": "Shibuya"}, {"ja": "オンライン", "en": "Online"}],
}
TEXT_Q = {"kind": "text", "text_ja": "理由をお聞かせください", "text_en": "Why?", "required": False}


def make_survey(
    session: Session,
    *,
    name: str = "顧客満足度調査",
    questions: list[dict[str, Any]] | None = None,
    status: str = "open",
    **fields: Any,
) -> Survey:
    data = SurveyIn.model_validate({"name": name, "questions": questions or [NPS_Q, TEXT_Q], **fields})
    survey = surveys.create_survey(session, actor=TEST_ACTOR, data=data)
    if status != "draft":
        surveys.update_survey(
            session, actor=TEST_ACTOR, survey_id=survey.id, data=SurveyUpdate(status=status)
        )
    session.flush()
    return survey


def answer(
    session: Session,
    settings: Settings,
    survey: Survey,
    *,
    nps: int | None = None,
    csat: int | None = None,
    ces: int | None = None,
    text: str | None = None,
    choices: list[int] | None = None,
    customer: Customer | None = None,
    invitation: Invitation | None = None,
    at: datetime | None = None,
    analyse: bool = True,
) -> responses.Submitted:
    """One response through the real checks and writer (a customer makes it a personal-link answer; with
    its `invitation`, through that link). Its comments are analysed as the queued job would, unless
    `analyse` is off."""
    opened = responses.Opened(survey, surveys.questions_of(session, survey.id), invitation, customer)
    by_kind = {"nps": nps, "csat": csat, "ces": ces, "text": text}
    values: dict[str, list[str]] = {}
    for q in opened.questions:
        if q.kind == "multiple_choice" and choices is not None:
            values[responses.field_name(q)] = [str(c) for c in choices]
        elif by_kind.get(q.kind) is not None:
            values[responses.field_name(q)] = [str(by_kind[q.kind])]
    given, problems = responses.check_answers(opened.questions, values)
    assert not problems, problems
    submitted = responses.submit(
        session,
        settings,
        opened=opened,
        answers=given,
        channel="link" if customer else "public",
        locale="ja",
        now=at,
    )
    if analyse and submitted.comments:
        responses.analyse_response(session, submitted.id)
    return submitted
