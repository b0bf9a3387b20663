"""Server time of the public survey pages and of a survey's results page over 100,000 responses.

    python bench/feedback_bench.py [--database-url URL] [--responses 100000] [--customers 50000] [--runs 300]

Builds a fresh database (a SQLite file under bench/out/, or a new PostgreSQL database next to the one URL
names), bulk-loads one survey (NPS, CSAT, a multiple choice question and a comment box) with `--responses`
responses over 12 months, 80% of them from known customers through personal links, 30% with a comment
analysed by kokyaku.feedback.text (a pool of 400 real analyses reused), then times requests through the real
app in this process. "Server time" is measured by an ASGI wrapper around the app: from the request's
arrival to the last byte of the response, so the test client's own overhead is not in it. Reference, same
run: GET /healthz.

Timings go to stdout and, with --write, to bench/RESULTS_feedback.md.
"""

import argparse
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fastapi.testclient import TestClient  # noqa: E402

from kokyaku.app import create_app  # noqa: E402
from kokyaku.audit.service import Actor  # noqa: E402
from kokyaku.auth import service as auth  # noqa: E402
from kokyaku.auth.schemas import UserCreate  # noqa: E402
from kokyaku.config import Settings  # noqa: E402
from kokyaku.customers.models import Customer  # noqa: E402
from kokyaku.db import Database  # noqa: E402
from kokyaku.feedback import responses as fb_responses  # noqa: E402
from kokyaku.feedback import stats, surveys  # noqa: E402
from kokyaku.feedback.models import Answer, DailyStat, Invitation, Response, TopicMention  # noqa: E402
from kokyaku.feedback.schemas import SurveyIn, SurveyUpdate  # noqa: E402
from kokyaku.feedback.text import analyze  # noqa: E402
from kokyaku.migrate import upgrade  # noqa: E402
from kokyaku.segments.models import CustomerLifecycle  # noqa: E402

ACTOR = Actor.system("bench")
PASSWORD = "bench-password-123"
BATCH = 5000
COMMENTS = [
    "店員さんがとても親切で、また来たいと思いました。",
    "配送が遅くて困りました。",
    "値段が少し高いと感じます。",
    "商品の品質が良く満足しています。",
    "サイトが使いにくく、注文に時間がかかりました。",
    "待ち時間が長すぎます。",
    "味は普通でした。",
    "スタッフの対応が丁寧でした。",
    "梱包が雑で箱がつぶれていました。",
    "店内が清潔で快適です。",
    "The staff were friendly and helpful.",
    "Delivery took far too long.",
    "Great quality for the price.",
    "The website keeps logging me out.",
    "Prices went up again, disappointing.",
    "Nice store, clean and bright.",
    "Support answered quickly and solved my problem.",
    "The food was cold when it arrived.",
]
STAGES = ["new", "repeat", "loyal", "at_risk", "churned", "won_back"]
CHANNELS = ["store", "online", "phone", "marketplace", "sns", "event", None]


class ServerTimer:
    """ASGI wrapper: records, per path, the seconds from a request's arrival to its last response byte."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: dict[str, list[float]] = {}
        # CPU seconds of this whole process per request (server and the in-process client): steadier than
        # wall time on a machine shared with other work
        self.cpu: dict[str, list[float]] = {}
        self.label: str | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.label is None:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        label = self.label

        async def timed_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.times.setdefault(label, []).append(time.perf_counter() - start)

        await self.app(scope, receive, timed_send)


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] * 1000


# ---------------------------------------------------------------- the database


def fresh_database(url: str | None) -> tuple[str, Any]:
    """A new database built by the migrations; returns its URL and a cleanup function."""
    if not url or url.startswith("sqlite"):
        out = ROOT / "bench" / "out"
        out.mkdir(parents=True, exist_ok=True)
        path = out / "feedback_bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        db_url = f"sqlite:///{path}"
        upgrade(db_url)
        return db_url, lambda: None
    base = make_url(url)
    name = f"{base.database}_feedback_bench"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = base.set(database=name).render_as_string(hide_password=False)
    upgrade(db_url)

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return db_url, drop


def load(
    db: Database, settings: Settings, *, n_customers: int, n_responses: int, seed: int = 7
) -> dict[str, Any]:
    """Customers, lifecycle stages, one open survey and its responses, answers, links and topic mentions."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    with db.session() as s:
        user = auth.create_user(
            s,
            settings,
            actor=ACTOR,
            data=UserCreate(
                email="bench@example.com", name="Bench", role="admin", password=PASSWORD, locale="ja"
            ),
        )
        user_id = user.id
    with db.engine.begin() as conn:
        for start in range(0, n_customers, BATCH):
            rows = [
                {
                    "kind": "person",
                    "name": f"顧客 {i}",
                    "search_text": "",
                    "custom": {},
                    "created_at": now,
                    "updated_at": now,
                    "channel": CHANNELS[i % len(CHANNELS)],
                    "locale": "ja" if i % 5 else "en",
                    "email": f"c{i}@example.com",
                }
                for i in range(start, min(n_customers, start + BATCH))
            ]
            conn.execute(insert(Customer.__table__), rows)
        ids = [r[0] for r in conn.execute(select(Customer.id).order_by(Customer.id))]
        stages = [
            {"customer_id": cid, "stage": rng.choice(STAGES), "since": now, "computed_at": now}
            for cid in ids
            if rng.random() < 0.7
        ]
        for start in range(0, len(stages), BATCH):
            conn.execute(insert(CustomerLifecycle.__table__), stages[start : start + BATCH])
    with db.session() as s:
        survey = surveys.create_survey(
            s,
            actor=ACTOR,
            data=SurveyIn.model_validate(
                {
                    "name": "Bench NPS",
                    "title_ja": "ご利用アンケート",
                    "title_en": "Your visit",
                    "questions": [
                        {
                            "kind": "nps",
                            "text_ja": "当店を友人にすすめますか？",
                            "text_en": "Would you recommend us?",
                        },
                        {
                            "kind": "csat",
                            "text_ja": "満足度は？",
                            "text_en": "How satisfied are you?",
                            "required": False,
                        },
                        {
                            "kind": "multiple_choice",
                            "text_ja": "ご利用の店舗",
                            "text_en": "Where?",
                            "required": False,
                            "choices": [
                                {"ja": "渋谷", "en": "Shibuya"},
                                {"ja": "新宿", "en": "Shinjuku"},
                                {"ja": "通販", "en": "Online"},
                            ],
                        },
                        {"kind": "text", "text_ja": "理由", "text_en": "Why?", "required": False},
                    ],
                }
            ),
        )
        surveys.update_survey(s, actor=ACTOR, survey_id=survey.id, data=SurveyUpdate(status="open"))
        questions = {q.kind: q.id for q in surveys.questions_of(s, survey.id)}
        survey_id, slug = survey.id, survey.public_slug
    pool = [
        analyze(COMMENTS[i % len(COMMENTS)] + ("" if i < len(COMMENTS) else f" ({i})")) for i in range(400)
    ]
    texts = [COMMENTS[i % len(COMMENTS)] + ("" if i < len(COMMENTS) else f" ({i})") for i in range(400)]
    nps_weights = [3, 1, 1, 2, 2, 4, 6, 10, 14, 22, 35]
    with db.engine.begin() as conn:
        next_answer = 1
        for start in range(0, n_responses, BATCH):
            stop = min(n_responses, start + BATCH)
            invitations, resp_rows, answer_rows, mentions = [], [], [], []
            when: dict[int, date] = {}
            for i in range(start, stop):
                at = now - timedelta(seconds=rng.randrange(365 * 86400))
                linked = rng.random() < 0.8
                cid = rng.choice(ids) if linked else None
                nps = rng.choices(range(11), nps_weights)[0]
                csat = rng.choice([1, 2, 3, 4, 4, 5, 5, 5]) if rng.random() < 0.6 else None
                rid = i + 1
                when[rid] = stats.local_day(at, settings.timezone)
                if linked:
                    invitations.append(
                        {
                            "id": rid,
                            "survey_id": survey_id,
                            "customer_id": cid,
                            "channel": "email",
                            "sent_at": at - timedelta(days=1),
                            "expires_at": at + timedelta(days=29),
                            "used_at": at,
                        }
                    )
                resp_rows.append(
                    {
                        "id": rid,
                        "survey_id": survey_id,
                        "invitation_id": rid if linked else None,
                        "customer_id": cid,
                        "channel": "email" if linked else "public",
                        "locale": "ja",
                        "submitted_at": at,
                        "day": when[rid],
                        "nps_score": nps,
                        "csat_score": csat,
                        "ces_score": None,
                        "nonce": None if linked else f"bench-{rid}",
                    }
                )
                base = {
                    "response_id": rid,
                    "survey_id": survey_id,
                    "has_text": False,
                    "text": None,
                    "lang": None,
                    "sentiment": None,
                    "sentiment_score": None,
                    "phrases": [],
                    "topics": [],
                }
                answer_rows.append({**base, "question_id": questions["nps"], "value_int": nps})
                if csat is not None:
                    answer_rows.append({**base, "question_id": questions["csat"], "value_int": csat})
                for c in rng.sample(range(3), rng.choice([0, 1, 1, 2])):
                    answer_rows.append({**base, "question_id": questions["multiple_choice"], "value_int": c})
                if rng.random() < 0.3:
                    k = rng.randrange(len(pool))
                    a = pool[k]
                    answer_rows.append(
                        {
                            **base,
                            "question_id": questions["text"],
                            "value_int": None,
                            "has_text": True,
                            "text": texts[k],
                            "lang": a.lang,
                            "sentiment": a.sentiment,
                            "sentiment_score": round(a.score, 4),
                            "phrases": list(a.phrases),
                            "topics": list(a.topics),
                        }
                    )
            # give every answer an explicit id, so that mentions can name the comments
            for j, row in enumerate(answer_rows):
                row["id"] = next_answer + j
                if row["has_text"]:
                    mentions += [
                        {
                            "source_type": "answer",
                            "source_id": row["id"],
                            "survey_id": survey_id,
                            "topic": t,
                            "sentiment": row["sentiment"],
                            "day": when[row["response_id"]],
                        }
                        for t in row["topics"]
                    ]
            next_answer += len(answer_rows)
            if invitations:
                conn.execute(insert(Invitation.__table__), invitations)
            conn.execute(insert(Response.__table__), resp_rows)
            conn.execute(insert(Answer.__table__), answer_rows)
            if mentions:
                conn.execute(insert(TopicMention.__table__), mentions)
    with db.session() as s:  # the daily counters, as the responses' own writes would have left them
        stats.rebuild(s, survey_id, settings.timezone)
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for table in ("survey_invitations", "survey_responses", "survey_answers"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
    with db.session(write=False) as s:
        counts = {
            m.__tablename__: s.scalar(select(func.count()).select_from(m))
            for m in (Customer, Response, Answer, Invitation, TopicMention, DailyStat)
        }
    return {
        "survey_id": survey_id,
        "slug": slug,
        "questions": questions,
        "ids": ids,
        "user_id": user_id,
        "counts": counts,
        "load_seconds": time.perf_counter() - t0,
    }


# ---------------------------------------------------------------- timing


def run(args: argparse.Namespace) -> dict[str, Any]:
    url, cleanup = fresh_database(args.database_url)
    settings = Settings(
        environment="test",
        database_url=url,
        secret_key="bench-secret",
        argon2_time_cost=1,
        argon2_memory_cost=1024,
        run_worker_in_process=False,
        survey_public_max_submits=10**9,
    )  # the throttle still runs its queries; it never refuses
    db = Database(url)
    try:
        data = load(db, settings, n_customers=args.customers, n_responses=args.responses)
        print(f"loaded {data['counts']} in {data['load_seconds']:.1f}s", flush=True)
        timer = ServerTimer(create_app(settings, db))
        client = TestClient(timer, follow_redirects=False)
        staff = TestClient(timer, follow_redirects=False)
        token = staff.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
        assert (
            staff.post(
                "/login", data={"email": "bench@example.com", "password": PASSWORD, "csrf_token": token}
            ).status_code
            == 303
        )
        sid, slug, q = data["survey_id"], data["slug"], data["questions"]
        # personal links to answer during the run (fresh, unused)
        with db.session() as s:
            from kokyaku.feedback.schemas import InvitationsIn

            made = surveys.invite(
                s,
                settings,
                actor=ACTOR,
                survey_id=sid,
                base_url="http://testserver",
                data=InvitationsIn(
                    channel="link", customer_ids=data["ids"][: args.runs * 2 + args.warmup * 2]
                ),
            )
            links = [u.removeprefix("http://testserver") for _, u in made.created]
        rng = random.Random(3)

        def timed(label: str, n: int, call: Any) -> None:
            for i in range(args.warmup):
                call(i)
            timer.label = label
            for i in range(n):
                cpu = time.process_time()
                resp = call(args.warmup + i)
                timer.cpu.setdefault(label, []).append(time.process_time() - cpu)
                assert resp.status_code < 400, (label, resp.status_code, resp.text[:300])
            timer.label = None

        def public_post(i: int) -> Any:
            nonce = fb_responses.issue_nonce(settings, sid)
            form = {
                "nonce": nonce,
                f"q{q['nps']}": str(rng.randrange(11)),
                f"q{q['csat']}": str(rng.randint(1, 5)),
                f"q{q['multiple_choice']}": ["0", "2"],
                f"q{q['text']}": rng.choice(COMMENTS),
            }
            return client.post(f"/s/{slug}", data=form)

        def personal_post(i: int) -> Any:
            form = {f"q{q['nps']}": str(rng.randrange(11)), f"q{q['text']}": rng.choice(COMMENTS)}
            return client.post(links[i], data=form)

        timed("GET /healthz (reference)", args.runs, lambda i: client.get("/healthz"))
        timed("GET /s/{slug} (public form)", args.runs, lambda i: client.get(f"/s/{slug}"))
        timed("POST /s/{slug} (public answer + comment)", args.runs, public_post)
        timed("GET /r/{token} (personal form)", args.runs, lambda i: client.get(links[-(i + 1)]))
        timed(
            "POST /r/{token} (personal answer: timeline, score, follow-up)",
            args.runs - args.warmup,
            personal_post,
        )
        results_runs = max(10, args.runs // 15)
        timed("GET /surveys/{id} (results page, 100k)", results_runs, lambda i: staff.get(f"/surveys/{sid}"))
        timed(
            "GET /surveys/{id}?days=90&unit=week",
            results_runs,
            lambda i: staff.get(f"/surveys/{sid}?days=90&unit=week"),
        )
        timed("GET /surveys/{id}/comments", results_runs, lambda i: staff.get(f"/surveys/{sid}/comments"))
        # the comments' analysis, queued by each answer above: run those jobs with the real worker
        from kokyaku.jobs.models import Job
        from kokyaku.jobs.service import load_handlers
        from kokyaku.jobs.worker import Worker

        with db.session(write=False) as s:
            queued = s.scalar(select(func.count()).select_from(Job).where(Job.kind == fb_responses.ANALYSE))
        worker = Worker(db, handlers={fb_responses.ANALYSE: load_handlers()[fb_responses.ANALYSE]})
        cpu, wall = time.process_time(), time.perf_counter()
        outcomes = dict(worker.drain())
        jobs = {
            "queued": int(queued or 0),
            "outcomes": outcomes,
            "cpu_ms": (time.process_time() - cpu) * 1000 / max(1, int(queued or 0)),
            "wall_ms": (time.perf_counter() - wall) * 1000 / max(1, int(queued or 0)),
        }
        with db.session(write=False) as s:
            final = s.scalar(select(func.count()).select_from(Response).where(Response.survey_id == sid))
            pending = s.scalar(
                select(func.count())
                .select_from(Answer)
                .where(Answer.survey_id == sid, Answer.has_text.is_(True), Answer.sentiment.is_(None))
            )
        jobs["unanalysed_after"] = int(pending or 0)
        return {
            "times": timer.times,
            "cpu": timer.cpu,
            "data": data,
            "url": make_url(url).render_as_string(hide_password=True),
            "dialect": db.engine.dialect.name,
            "final_responses": final,
            "jobs": jobs,
        }
    finally:
        db.dispose()
        cleanup()


def report(outcome: dict[str, Any], args: argparse.Namespace) -> str:
    times = outcome["times"]
    ref = statistics.median(times["GET /healthz (reference)"]) * 1000
    ref95 = p(times["GET /healthz (reference)"], 0.95)
    lines = [
        f"### {outcome['dialect']}: {outcome['data']['counts']['survey_responses']:,} responses",
        "",
        f"- database: `{outcome['url']}`; loaded in {outcome['data']['load_seconds']:.0f} s; rows: "
        + ", ".join(f"{k} {v:,}" for k, v in outcome["data"]["counts"].items()),
        "",
        "| request | n | server p50 ms | server p95 ms | max ms | p95 / reference p95 | CPU p50 ms "
        "| CPU p95 ms | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    cpu = outcome["cpu"]
    for label, values in times.items():
        target = (
            "< 30 ms p95" if "/s/" in label or "/r/" in label else "< 200 ms" if "results" in label else ""
        )
        lines.append(
            f"| {label} | {len(values)} | {statistics.median(values) * 1000:.2f} | {p(values, 0.95):.2f} | "
            f"{max(values) * 1000:.2f} | {p(values, 0.95) / ref95:.1f}x | "
            f"{statistics.median(cpu[label]) * 1000:.2f} | {p(cpu[label], 0.95):.2f} | {target} |"
        )
    lines.append("")
    lines.append(f"reference GET /healthz: p50 {ref:.2f} ms, p95 {ref95:.2f} ms (server time)")
    j = outcome["jobs"]
    lines.append(
        f"comment analysis jobs queued by the POSTs: {j['queued']}, run afterwards by the real worker: "
        f"{j['outcomes']}, {j['cpu_ms']:.2f} ms CPU / {j['wall_ms']:.2f} ms wall per job; comments still "
        f"unanalysed afterwards: {j['unanalysed_after']}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default=None, help="PostgreSQL URL (a new database is made beside it)"
    )
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--write", action="store_true", help="append the figures to bench/RESULTS_feedback.md"
    )
    args = parser.parse_args()
    started = datetime.now(UTC)
    load_start = os.getloadavg()
    outcome = run(args)
    body = report(outcome, args)
    header = (
        f"Run {started:%Y-%m-%d %H:%M} UTC; nproc {os.cpu_count()}; "
        f"{platform.processor() or platform.machine()}; "
        f"Python {platform.python_version()}; load average at start {load_start[0]:.1f}, at end "
        f"{os.getloadavg()[0]:.1f}. Command: `python bench/feedback_bench.py "
        f"{'--database-url <pg> ' if args.database_url else ''}--responses {args.responses} "
        f"--customers {args.customers} --runs {args.runs}`"
    )
    print(header)
    print(body)
    if args.write:
        path = ROOT / "bench" / "RESULTS_feedback.md"
        if not path.exists():
            path.write_text(
                "# Feedback: public survey pages and the results page\n\n"
                "Server time per request (an ASGI wrapper around the app, in process: from the request's "
                "arrival to its last byte), one client, requests one after another.\n\n"
            )
        with path.open("a") as fh:
            fh.write(header + "\n\n" + body + "\n\n")


if __name__ == "__main__":
    main()
