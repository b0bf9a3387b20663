"""Surveys end to end: the builder's validation, personal links sent through a real SMTP server and answered
in the public page, forged / expired / reused links, double submits, the public link's throttle, answers
refused at the question, the results figures on a hand-built set, and the pages in Japanese and English."""

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kokyaku.app import create_app
from kokyaku.config import Settings
from kokyaku.customers.models import Customer
from kokyaku.db import Database
from kokyaku.feedback import responses, scores, stats, surveys
from kokyaku.feedback.models import Answer, CustomerScore, DailyStat, Invitation, Response, TopicMention
from kokyaku.feedback.schemas import InvitationsIn, SurveyUpdate
from kokyaku.segments import service as segments
from kokyaku.segments.schemas import SegmentIn
from kokyaku.timeline.models import TimelineEntry
from tests.conftest import TEST_ACTOR
from tests.customers.factories import make_customer
from tests.feedback.conftest import Inbox, run_feedback_jobs, run_mail_jobs
from tests.feedback.factories import CES_Q, CHOICE_Q, CSAT_Q, NPS_Q, TEXT_Q, answer, make_survey

SURVEY = {
    "name": "Store NPS",
    "title_ja": "アンケート",
    "title_en": "Our survey",
    "questions": [NPS_Q, TEXT_Q],
}


def _count(db: Database, model: type) -> int:
    with db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _field_messages(resp) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {d["field"]: d["message"] for d in resp.json()["detail"]}


def _question_ids(html: str) -> list[int]:
    return sorted({int(x) for x in re.findall(r'name="q(\d+)"', html)})


def _link(session: Session, settings: Settings, survey_id: int, customer_id: int) -> str:
    made = surveys.invite(
        session,
        settings,
        actor=TEST_ACTOR,
        survey_id=survey_id,
        base_url="http://testserver",
        data=InvitationsIn(channel="link", customer_ids=[customer_id]),
    )
    session.commit()
    return made.created[0][1].removeprefix("http://testserver")


# ---------------------------------------------------------------- the builder


def test_builder_api_refuses_bad_surveys_naming_the_field(api) -> None:  # type: ignore[no-untyped-def]
    bad = {
        "name": "x",
        "questions": [
            {"kind": "nps", "text_ja": "おすすめ？", "text_en": ""},
            {
                "kind": "single_choice",
                "text_ja": "どれ",
                "text_en": "Which",
                "choices": [{"ja": "a", "en": "a"}],
            },
            {
                "kind": "text",
                "text_ja": "理由",
                "text_en": "Why",
                "choices": [{"ja": "a", "en": "a"}, {"ja": "b", "en": "b"}],
            },
            {"kind": "stars", "text_ja": "星", "text_en": "Stars"},
        ],
    }
    resp = api.post("/api/v1/surveys", json=bad)
    assert resp.status_code == 422 and resp.json()["error"] == "validation_error"
    fields = _field_messages(resp)
    assert "questions.0.text_en" in fields
    assert fields["questions.1"] == "A choice question needs at least two choices."
    assert fields["questions.2"] == "Only choice questions have choices."
    assert "questions.3.kind" in fields
    assert api.post("/api/v1/surveys", json={"name": "x", "questions": []}).status_code == 422
    assert api.get("/api/v1/surveys").json()["items"] == []  # nothing half-written


def test_builder_creates_drafts_and_locks_questions_once_answered(
    api, db: Database, settings: Settings, api_as
) -> None:  # type: ignore[no-untyped-def]
    created = api.post("/api/v1/surveys", json=SURVEY)
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "draft" and [q["kind"] for q in body["questions"]] == ["nps", "text"]
    assert body["public_url"].startswith("http://testserver/s/")
    sid = body["id"]
    assert api_as("viewer").client.post("/api/v1/surveys", json=SURVEY).status_code == 403
    assert api_as("viewer").client.get(f"/api/v1/surveys/{sid}").status_code == 200
    assert (
        api_as("marketing").client.patch(f"/api/v1/surveys/{sid}", json={"status": "open"}).status_code == 200
    )
    with db.session() as s:
        answer(s, settings, surveys.get_survey(s, sid), nps=9)
    reworded = {**NPS_Q, "text_en": "How likely are you to recommend us?"}
    ok = api.patch(f"/api/v1/surveys/{sid}", json={"questions": [reworded, TEXT_Q]})
    assert (
        ok.status_code == 200
        and ok.json()["questions"][0]["text_en"] == "How likely are you to recommend us?"
    )
    locked = api.patch(f"/api/v1/surveys/{sid}", json={"questions": [NPS_Q, CSAT_Q]})
    assert locked.status_code == 409 and locked.json()["error"] == "survey_questions_locked"
    assert api.patch(f"/api/v1/surveys/{sid}", json={"status": "draft"}).status_code == 409
    copy = api.post(f"/api/v1/surveys/{sid}/copy").json()
    assert copy["status"] == "draft" and len(copy["questions"]) == 2 and copy["id"] != sid


def test_builder_page_shows_errors_at_the_question(page_as) -> None:  # type: ignore[no-untyped-def]
    client = page_as("marketing", locale="en")
    html = client.get("/surveys/new").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    form = {
        "csrf_token": token,
        "name": "Shop survey",
        "link_days": "30",
        "q-a-kind": "single_choice",
        "q-a-text_ja": "どれ",
        "q-a-text_en": "",
        "q-a-required": "on",
        "q-a-choices_ja": "赤\n青",
        "q-a-choices_en": "Red",
    }
    resp = client.post("/surveys/new", data=form)
    assert resp.status_code == 422
    assert 'id="q-a-text_en-err"' in resp.text and "Give each choice in both languages" in resp.text
    form.update({"q-a-text_en": "Which?", "q-a-choices_en": "Red\nBlue"})
    resp = client.post("/surveys/new", data=form)
    assert resp.status_code == 303
    page = client.get(resp.headers["location"])
    assert page.status_code == 200 and "Shop survey" in page.text


# ---------------------------------------------------------------- personal links, end to end


def test_personal_link_by_email_through_a_real_smtp_server(
    mail_app, mail_page_as, db: Database, session: Session, smtp: Inbox
) -> None:  # type: ignore[no-untyped-def]
    survey = make_survey(
        session, questions=[NPS_Q, TEXT_Q], title_ja="ご来店アンケート", title_en="Visit survey"
    )
    customer = make_customer(
        session, name="佐藤 花子", name_kana="サトウ ハナコ", emails=["hanako@example.com"], locale="ja"
    )
    no_email = make_customer(session, name="田中 一郎", name_kana=None)
    session.commit()
    staff = mail_page_as("marketing", locale="en")
    html = staff.get(f"/surveys/{survey.id}").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    resp = staff.post(
        f"/surveys/{survey.id}/invite",
        data={"csrf_token": token, "channel": "email", "customer_ids": f"{customer.id}, {no_email.id}"},
    )
    assert resp.status_code == 200, resp.text
    assert "1 personal links created" in resp.text and "Without an email address: 1" in resp.text
    assert smtp.messages == []  # queued with the transaction; the worker sends it
    assert run_mail_jobs(db) == {"succeeded": 1}
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail["To"] == "hanako@example.com" and "ご来店アンケート" in mail["Subject"]
    body = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "佐藤 花子 様" in body
    link = re.search(r"http://testserver(/r/\S+)", body).group(1)  # type: ignore[union-attr]

    customer_browser = TestClient(mail_app)
    page = customer_browser.get(link, headers={"accept-language": "en"})
    assert page.status_code == 200
    assert '<html lang="ja">' in page.text  # the customer's language wins over the browser's
    assert "topbar" not in page.text and "kokyaku.css" not in page.text  # the light public layout
    assert "set-cookie" not in page.headers
    nps_q, text_q = _question_ids(page.text)
    done = customer_browser.post(link, data={f"q{nps_q}": "3", f"q{text_q}": "配送が遅くて残念でした。"})
    assert done.status_code == 200 and "ありがとうございました" in done.text

    with db.session(write=False) as s:
        entry = s.scalar(select(TimelineEntry).where(TimelineEntry.customer_id == customer.id))
        assert entry is not None and entry.kind == "survey_answered" and entry.properties["score"] == 3
        score = s.get(CustomerScore, customer.id)
        assert score is not None and score.nps_category == "detractor"
        assert s.scalar(select(Invitation.used_at).where(Invitation.customer_id == customer.id)) is not None
        # the comment is stored as written; its analysis is a job queued with the response
        row = s.scalar(select(Answer).where(Answer.has_text.is_(True)))
        assert row is not None and row.text == "配送が遅くて残念でした。" and row.sentiment is None
        assert s.scalar(select(func.count()).select_from(TopicMention)) == 0
    assert "Not analysed yet" in staff.get(f"/surveys/{survey.id}/comments").text
    assert run_feedback_jobs(db) == {"succeeded": 1}
    with db.session(write=False) as s:
        row = s.scalar(select(Answer).where(Answer.has_text.is_(True)))
        assert row is not None and row.sentiment == "negative" and "delivery" in row.topics
        assert s.scalar(select(func.count()).select_from(TopicMention)) == 1
        topic_rows = s.scalars(
            select(DailyStat.key).where(DailyStat.survey_id == survey.id, DailyStat.dim == stats.TOPIC)
        ).all()
        assert topic_rows == ["delivery:negative"]
    comments = staff.get(f"/surveys/{survey.id}/comments?sentiment=negative").text
    assert "配送が遅くて残念でした。" in comments and "Not analysed yet" not in comments
    # the job is idempotent: running the analysis again changes nothing
    with db.session() as s:
        assert responses.analyse_response(s, row.response_id) == 0
        assert s.scalar(select(func.count()).select_from(TopicMention)) == 1
    again = customer_browser.get(link)
    assert again.status_code == 409 and "すでにご回答いただいています" in again.text


def test_forged_expired_and_reused_links_get_a_clear_page(
    app, db: Database, session: Session, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    survey = make_survey(session)
    customer = make_customer(session, emails=["a@example.com"])
    session.commit()
    link = _link(session, settings, survey.id, customer.id)
    browser = TestClient(app)
    forged = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    for bad in (forged, "/r/not-a-token", "/r/" + "x" * 300, "/s/no-such-survey"):
        resp = browser.get(bad, headers={"accept-language": "en"})
        assert resp.status_code == 404 and "This survey link is not valid" in resp.text, bad
        assert "topbar" not in resp.text
    nps_q, _text_q = _question_ids(browser.get(link).text)
    assert browser.post(link, data={f"q{nps_q}": "9"}).status_code == 200
    reused = browser.post(link, data={f"q{nps_q}": "2"}, headers={"accept-language": "en"})
    assert reused.status_code == 409 and "already answered" in reused.text
    assert _count(db, Response) == 1

    other = make_customer(session, name="別の 顧客", emails=["b@example.com"])
    session.commit()
    expired = _link(session, settings, survey.id, other.id)
    session.execute(
        update(Invitation)
        .where(Invitation.customer_id == other.id)
        .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
    )
    session.commit()
    resp = browser.get(expired, headers={"accept-language": "ja"})
    assert resp.status_code == 410 and "有効期限が切れています" in resp.text
    assert browser.post(expired, data={f"q{nps_q}": "9"}).status_code == 410
    assert _count(db, Response) == 1


def test_a_double_submit_counts_once(app, db: Database, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    survey = make_survey(session)
    customer = make_customer(session, emails=["a@example.com"])
    session.commit()
    link = _link(session, settings, survey.id, customer.id)
    nps_q, _ = _question_ids(TestClient(app).get(link).text)

    def submit(_: int) -> int:
        return TestClient(app).post(link, data={f"q{nps_q}": "10"}).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(submit, range(4)))
    assert codes.count(200) == 1 and set(codes[1:]) == {409}, codes
    assert _count(db, Response) == 1

    # the public form: the same rendered form sent twice is one answer
    browser = TestClient(app)
    html = browser.get(f"/s/{survey.public_slug}").text
    nonce = re.search(r'name="nonce" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    form = {"nonce": nonce, f"q{nps_q}": "8"}
    assert browser.post(f"/s/{survey.public_slug}", data=form).status_code == 200
    assert browser.post(f"/s/{survey.public_slug}", data=form).status_code == 409
    assert (
        browser.post(f"/s/{survey.public_slug}", data={**form, "nonce": nonce[:-2] + "xx"}).status_code == 400
    )
    assert _count(db, Response) == 2


def test_public_link_is_rate_limited_per_address_across_processes(
    settings: Settings, db: Database, session: Session
) -> None:
    limited = settings.model_copy(
        update={"survey_public_max_submits": 3, "survey_public_window_seconds": 600}
    )
    survey = make_survey(session)
    session.commit()
    second_process = Database(settings.database_url)  # its own engine and pool, like another server process
    try:
        apps = [create_app(limited, db), create_app(limited, second_process)]
        url = f"/s/{survey.public_slug}"
        codes = []
        for i in range(5):
            browser = TestClient(apps[i % 2], headers={"accept-language": "en"})
            html = browser.get(url).text
            nonce = re.search(r'name="nonce" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
            q = _question_ids(html)[0]
            resp = browser.post(url, data={"nonce": nonce, f"q{q}": "9"})
            codes.append(resp.status_code)
        assert codes == [200, 200, 200, 429, 429]
        assert "Too many answers" in resp.text
        assert _count(db, Response) == 3
    finally:
        second_process.dispose()


def test_out_of_range_answers_are_refused_at_the_question(app, db: Database, session: Session) -> None:  # type: ignore[no-untyped-def]
    survey = make_survey(session, questions=[NPS_Q, CSAT_Q, CHOICE_Q, TEXT_Q])
    session.commit()
    browser = TestClient(app)
    url = f"/s/{survey.public_slug}"
    html = browser.get(url, headers={"accept-language": "en"}).text
    nonce = re.search(r'name="nonce" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    nps_q, csat_q, choice_q, text_q = _question_ids(html)
    resp = browser.post(
        url,
        data={
            "nonce": nonce,
            f"q{nps_q}": "11",
            f"q{csat_q}": "0",
            f"q{choice_q}": "7",
            f"q{text_q}": "x" * 2001,
            "lang": "en",
        },
    )
    assert resp.status_code == 422
    for qid, message in (
        (nps_q, "Choose a number from 0 to 10."),
        (csat_q, "Choose a number from 1 to 5."),
        (choice_q, "Choose from the options shown."),
        (text_q, "At most 2000 characters."),
    ):
        described = re.search(
            rf'data-question="{qid}"[^>]*aria-describedby="(q{qid}-error)"', resp.text
        ) or re.search(rf'id="q{qid}-first"[^>]*aria-describedby="(q{qid}-error)"', resp.text)
        assert described, qid
        assert f'id="q{qid}-error">{message}<' in resp.text
    assert "x" * 2001 in resp.text  # what was typed comes back, to be shortened
    missing = browser.post(url, data={"nonce": nonce, "lang": "ja"})
    assert missing.status_code == 422 and "この質問にお答えください。" in missing.text
    assert _count(db, Response) == 0 and _count(db, Answer) == 0


# ---------------------------------------------------------------- results


def _hand_built(session: Session, settings: Settings) -> tuple[int, list[int]]:
    """10 NPS answers (5 promoters, 2 passives, 3 detractors: NPS = 50% - 30% = 20), CSAT 5,4,3,1 (50%),
    CES 7,5,3 (5.0), in two months; 4 personal links of which 2 answered."""
    survey = make_survey(session, questions=[NPS_Q, CSAT_Q, CES_Q, CHOICE_Q, TEXT_Q])
    people = [
        make_customer(
            session,
            name=f"顧客 {i}",
            name_kana=None,
            emails=[f"c{i}@example.com"],
            channel="store" if i % 2 else "online",
        )
        for i in range(4)
    ]
    session.flush()
    made = surveys.invite(
        session,
        settings,
        actor=TEST_ACTOR,
        survey_id=survey.id,
        base_url="http://x",
        data=InvitationsIn(channel="link", customer_ids=[p.id for p in people]),
    )
    march, april = datetime(2026, 3, 10, 3, tzinfo=UTC), datetime(2026, 4, 10, 3, tzinfo=UTC)
    nps = [10, 10, 9, 8, 7, 6, 0, 3, 9, 10]
    csat = [5, 4, 3, 1] + [None] * 6
    ces = [7, 5, 3] + [None] * 7
    for i, score in enumerate(nps):
        at = march if i < 4 else april
        customer = people[i] if i < 2 else None
        # the first two answered through their personal links
        inv = next((inv for inv, _url in made.created if customer and inv.customer_id == customer.id), None)
        answer(
            session,
            settings,
            survey,
            nps=score,
            csat=csat[i],
            ces=ces[i],
            customer=customer,
            invitation=inv,
            at=at,
            choices=[0, 1] if i == 0 else [1] if i < 3 else None,
            text="店員さんがとても親切でした" if i == 0 else ("配送が遅かった" if i == 7 else None),
        )
    session.commit()
    return survey.id, [p.id for p in people]


def test_results_figures_are_exact_on_a_hand_built_set(api, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    sid, _people = _hand_built(session, settings)
    r = api.get(f"/api/v1/surveys/{sid}/results").json()
    assert (r["responses"], r["promoters"], r["passives"], r["detractors"]) == (10, 5, 2, 3)
    assert r["nps"] == 20.0
    assert r["nps_distribution"] == {"0": 1, "3": 1, "6": 1, "7": 1, "8": 1, "9": 2, "10": 3}
    assert r["csat"] == 50.0 and r["csat_distribution"] == {"1": 1, "3": 1, "4": 1, "5": 1}
    assert r["ces"] == 5.0
    assert (r["invitations"], r["invited_responses"], r["response_rate"]) == (4, 2, 50.0)
    march, april = r["trend"]
    assert (march["key"], march["responses"], march["nps"]) == ("2026-03", 4, 75.0)  # 10,10,9,8: 75% - 0%
    assert (april["key"], april["responses"], april["nps"]) == (
        "2026-04",
        6,
        -16.7,
    )  # 7,6,0,3,9,10: 33% - 50%
    by_channel = {b["key"]: (b["responses"], b["nps"]) for b in r["by_channel"]}
    assert by_channel == {"online": (1, 100.0), "store": (1, 100.0), "~anonymous": (8, 0.0)}
    by_stage = {b["key"]: b["responses"] for b in r["by_lifecycle"]}
    assert by_stage == {"lead": 2, "~anonymous": 8}
    (choice,) = r["questions"]
    assert choice["counts"] == {"0": 1, "1": 3}
    assert [c["sentiment"] for c in r["comments"]] == ["negative", "positive"]
    april_only = api.get(f"/api/v1/surveys/{sid}/results", params={"since": "2026-04-01"}).json()
    assert april_only["responses"] == 6 and april_only["nps"] == -16.7  # 2 promoters, 3 detractors of 6
    march_only = api.get(f"/api/v1/surveys/{sid}/results", params={"until": "2026-04-01"}).json()
    # the links were sent today, after the period: no response rate for March
    assert (march_only["responses"], march_only["nps"], march_only["response_rate"]) == (4, 75.0, None)
    bad = api.get(f"/api/v1/surveys/{sid}/results", params={"since": "April"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "since"


def test_the_daily_counters_agree_with_the_responses(api, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """The counters each response keeps current equal a recount from the responses; a segment's figures,
    grouped from the responses themselves, agree with them too."""
    sid, people = _hand_built(session, settings)
    counted = lambda: sorted(  # noqa: E731
        tuple(row) for row in session.execute(select(DailyStat.__table__)).all()
    )
    incremental = counted()
    assert stats.rebuild(session, sid, settings.timezone) == len(incremental)
    session.commit()
    assert counted() == incremental
    two = segments.create_segment(
        session,
        actor=TEST_ACTOR,
        tz=settings.timezone,
        data=SegmentIn(
            name="answered",
            kind="static",
            rules={"op": "and", "conditions": [{"field": "kind", "operator": "eq", "value": "person"}]},
        ),
    )
    session.commit()
    r = api.get(f"/api/v1/surveys/{sid}/results", params={"segment_id": two.id}).json()
    # the static segment froze every person: the 4 invited customers, 2 of whom answered (10 and 10)
    assert (r["responses"], r["nps"], r["promoters"]) == (2, 100.0, 2)
    assert {b["key"]: b["responses"] for b in r["by_channel"]} == {"online": 1, "store": 1}
    assert (r["invitations"], r["invited_responses"]) == (4, 2)
    assert r["questions"][0]["counts"] == {"0": 1, "1": 2}


def test_kpi_summaries_and_the_detractor_segment_rule(session: Session, settings: Settings) -> None:
    sid, people = _hand_built(session, settings)
    everything = scores.nps_summary(session)
    assert (everything.responses, everything.value) == (10, 20.0)
    april = scores.nps_summary(session, datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
    assert (april.responses, april.promoters, april.detractors) == (6, 2, 3)
    assert scores.csat_summary(session).value == 50.0
    # people[0] and people[1] answered 10 and 10 in March: promoters, not detractors
    detractor = make_customer(session, name="不満 太郎", name_kana=None, emails=["d@example.com"])
    session.flush()
    answer(
        session,
        settings,
        surveys.get_survey(session, sid),
        nps=2,
        customer=detractor,
        at=datetime.now(UTC) - timedelta(days=5),
    )
    session.commit()
    rules = {
        "op": "and",
        "conditions": [
            {"field": "nps_category", "operator": "eq", "value": "detractor"},
            {"field": "nps_answered_at", "operator": "in_last_days", "value": 90},
        ],
    }
    compiled = segments.compile_rules(session, rules, settings.timezone)
    ids = set(session.scalars(compiled.select_from(Customer.id)))
    assert ids == {detractor.id}
    promoters = segments.count_rules(
        session,
        {"op": "and", "conditions": [{"field": "nps_last_score", "operator": "gte", "value": 9}]},
        settings.timezone,
    )
    assert promoters == 2


def test_results_page_in_english_and_japanese(page_as, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    sid, _ = _hand_built(session, settings)
    en = page_as("viewer", locale="en").get(f"/surveys/{sid}")
    assert en.status_code == 200
    assert 'data-testid="nps">20.0<' in en.text and 'data-testid="csat">50.0%<' in en.text
    assert "Response rate" in en.text and 'data-testid="response-rate">50.0%<' in en.text
    assert "/static/plotly/plotly.min.js" in en.text and "cdn" not in en.text.lower()
    assert "Create personal links" not in en.text  # a viewer reads only
    ja = page_as("marketing", locale="ja").get(f"/surveys/{sid}")
    assert (
        ja.status_code == 200
        and "回答率" in ja.text
        and "推奨者" in ja.text
        and "個別リンクを作成" in ja.text
    )
    comments = page_as("sales", locale="ja").get(f"/surveys/{sid}/comments?sentiment=negative")
    assert "配送が遅かった" in comments.text and "親切" not in comments.text
    listing = page_as("support", locale="ja").get("/surveys")
    assert "顧客満足度調査" in listing.text and "アンケート" in listing.text


def test_public_page_language_follows_the_browser_with_a_switch(app, session: Session) -> None:  # type: ignore[no-untyped-def]
    survey = make_survey(session, title_ja="ご意見をお聞かせください", title_en="Tell us what you think")
    session.commit()
    browser = TestClient(app)
    en = browser.get(f"/s/{survey.public_slug}", headers={"accept-language": "en-US,en;q=0.9"})
    assert (
        '<html lang="en">' in en.text
        and "Tell us what you think" in en.text
        and "Would you recommend us?" in en.text
    )
    assert 'href="?lang=ja"' in en.text
    ja = browser.get(f"/s/{survey.public_slug}?lang=ja", headers={"accept-language": "en"})
    assert '<html lang="ja">' in ja.text and "ご意見をお聞かせください" in ja.text and "回答を送信" in ja.text
    assert "label" in ja.text and 'for="q' in ja.text  # the comment box has a label


def test_kpi_by_local_day_comes_from_the_daily_counters(session: Session, settings: Settings) -> None:
    _hand_built(session, settings)
    april = scores.nps_summary(session, date(2026, 4, 1), date(2026, 5, 1))
    assert (april.responses, april.promoters, april.detractors, april.value) == (6, 2, 3, -16.7)
    assert scores.csat_summary(session, None, date(2026, 4, 1)).value == 50.0  # March: 5, 4, 3, 1


def test_a_merge_moves_answers_and_keeps_the_latest_score(session: Session, settings: Settings) -> None:
    import kokyaku.domains  # noqa: F401  (every merge participant)
    from kokyaku.customers.merge import merge_customers, undo_merge

    survey = make_survey(session)
    kept = make_customer(session, name="統合 先", name_kana=None)
    gone = make_customer(session, name="統合 元", name_kana=None)
    session.flush()
    answer(session, settings, survey, nps=10, customer=kept, at=datetime(2026, 1, 1, tzinfo=UTC))
    answer(session, settings, survey, nps=2, customer=gone, at=datetime(2026, 2, 1, tzinfo=UTC))
    session.commit()
    merge = merge_customers(session, actor=TEST_ACTOR, survivor_id=kept.id, merged_id=gone.id)
    session.commit()
    assert set(session.scalars(select(Response.customer_id))) == {kept.id}
    latest = session.get(CustomerScore, kept.id)
    assert latest is not None and latest.nps_score == 2  # the merged customer's answer was the later one
    assert session.get(CustomerScore, gone.id) is None
    undo_merge(session, actor=TEST_ACTOR, merge_id=merge.id)
    session.commit()
    session.expire_all()
    assert session.get(CustomerScore, kept.id).nps_score == 10  # type: ignore[union-attr]
    assert session.get(CustomerScore, gone.id).nps_score == 2  # type: ignore[union-attr]


def test_cli_prints_personal_links_and_recounts(tmp_path, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    survey = make_survey(session)
    customer = make_customer(session, name="CLI 顧客", name_kana=None)
    session.commit()
    env = {
        **os.environ,
        "KOKYAKU_DATABASE_URL": settings.database_url,
        "KOKYAKU_PUBLIC_URL": "https://crm.example.jp",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kokyaku.cli.main", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    sent = run("surveys", "send", str(survey.id), "--customer", str(customer.id), "--channel", "link")
    assert sent.returncode == 0, sent.stderr
    cid, url = sent.stdout.strip().split("\t")
    assert cid == str(customer.id) and url.startswith("https://crm.example.jp/r/")
    none = run("surveys", "send", str(survey.id), "--channel", "link")
    assert none.returncode == 1 and "give --segment or at least one --customer" in none.stderr
    email = run("surveys", "send", str(survey.id), "--customer", str(customer.id))
    assert email.returncode == 1 and "KOKYAKU_SMTP_HOST" in email.stderr
    recount = run("surveys", "rebuild-stats", str(survey.id))
    assert recount.returncode == 0 and "daily rows recounted" in recount.stderr


def test_public_form_shows_edited_wording_at_once(app, session: Session) -> None:  # type: ignore[no-untyped-def]
    survey = make_survey(session, questions=[NPS_Q, TEXT_Q])
    session.commit()
    browser = TestClient(app)
    assert "当店を友人にすすめますか" in browser.get(f"/s/{survey.public_slug}").text
    reworded = [{**NPS_Q, "text_ja": "このお店を友人にすすめますか？"}, TEXT_Q]
    surveys.update_survey(
        session,
        actor=TEST_ACTOR,
        survey_id=survey.id,
        data=SurveyUpdate.model_validate({"questions": reworded}),
    )
    session.commit()
    page = browser.get(f"/s/{survey.public_slug}").text  # the questions are cached per survey version
    assert "このお店を友人にすすめますか" in page and "当店を友人に" not in page
