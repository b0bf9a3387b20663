"""Reviews: idempotent import by API and CSV (Shift_JIS with Japanese headers, through the real CLI), refusals
that name the review, linking to customers, and the monitoring page with its alert list."""

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kokyaku.db import Database
from kokyaku.feedback.models import Followup, Review, TopicMention
from tests.conftest import csrf_of
from tests.customers.factories import make_customer

BATCH = {
    "reviews": [
        {
            "source": "google",
            "external_id": "g-1",
            "rating": 5,
            "text": "スタッフの対応がとても丁寧で満足です。",
            "author": "山田",
            "posted_at": "2026-03-02T10:00:00+09:00",
            "url": "https://maps.example.com/r/1",
        },
        {
            "source": "tabelog",
            "external_id": "t-9",
            "rating": 2,
            "title": "残念",
            "text": "料理が冷めていて、待ち時間も長かった。",
            "author": "グルメ太郎",
            "posted_at": "2026-04-05T19:30:00+09:00",
        },
        {
            "source": "google",
            "external_id": "g-2",
            "rating": 4,
            "text": "Friendly staff and fair prices.",
            "posted_at": "2026-04-10T12:00:00",
        },
    ]
}


def _count(db: Database, model: type) -> int:
    with db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_api_import_is_idempotent(api, db: Database) -> None:  # type: ignore[no-untyped-def]
    first = api.post("/api/v1/reviews", json=BATCH)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "linked": 0,
        "alerts": 1,
        "followups": 0,
    }
    again = api.post("/api/v1/reviews", json=BATCH)
    assert again.json()["created"] == 0 and again.json()["unchanged"] == 3
    assert _count(db, Review) == 3
    mentions = _count(db, TopicMention)
    assert mentions >= 3  # staff, food, wait, price ...
    changed = {"reviews": [{**BATCH["reviews"][2], "rating": 1, "text": "Terrible service."}]}
    third = api.post("/api/v1/reviews", json=changed).json()
    assert (third["updated"], third["alerts"]) == (1, 1)
    with db.session(write=False) as s:
        review = s.scalar(select(Review).where(Review.external_id == "g-2"))
        assert review is not None and review.rating == 1 and review.negative and review.alert
        # a review without a zone was read in the business zone (Asia/Tokyo): 12:00 JST is 03:00 UTC
        assert review.posted_at.hour == 3
    listing = api.get("/api/v1/reviews", params={"alert": True}).json()
    assert {r["external_id"] for r in listing["items"]} == {"t-9", "g-2"}


def test_api_import_refuses_bad_reviews_and_writes_nothing(api, api_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    bad = {"reviews": [BATCH["reviews"][0], {**BATCH["reviews"][1], "rating": 6}]}
    resp = api.post("/api/v1/reviews", json=bad)
    assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "reviews.1.rating"
    ghost = {"reviews": [BATCH["reviews"][0], {**BATCH["reviews"][1], "customer_id": 999999}]}
    resp = api.post("/api/v1/reviews", json=ghost)
    assert resp.status_code == 422
    assert resp.json()["detail"] == [
        {"field": "reviews.1.customer_id", "message": "Customer 999999 does not exist."}
    ]
    future = {"reviews": [{**BATCH["reviews"][0], "posted_at": "2099-01-01T00:00:00+09:00"}]}
    assert api.post("/api/v1/reviews", json=future).json()["detail"][0]["field"] == "reviews.0.posted_at"
    assert api_as("viewer").client.post("/api/v1/reviews", json=BATCH).status_code == 403
    assert api_as("sales").client.post("/api/v1/reviews", json=BATCH).status_code == 403
    assert _count(db, Review) == 0


def test_reviews_link_to_customers_by_email_or_a_unique_name(api, session: Session, db: Database) -> None:  # type: ignore[no-untyped-def]
    by_email = make_customer(session, name="鈴木 一郎", emails=["ichiro@example.com"])
    unique = make_customer(session, name="高橋 美咲", name_kana=None)
    make_customer(session, name="佐藤 健", name_kana=None)
    make_customer(session, name="佐藤 健", name_kana=None)  # two with this name: never guessed
    session.commit()
    batch = {
        "reviews": [
            {
                "source": "amazon",
                "external_id": "a1",
                "rating": 5,
                "posted_at": "2026-03-01T00:00:00Z",
                "customer_email": "Ichiro@Example.com",
            },
            {
                "source": "amazon",
                "external_id": "a2",
                "rating": 4,
                "posted_at": "2026-03-01T00:00:00Z",
                "author": "高橋 美咲",
            },
            {
                "source": "amazon",
                "external_id": "a3",
                "rating": 4,
                "posted_at": "2026-03-01T00:00:00Z",
                "author": "佐藤 健",
            },
        ]
    }
    assert api.post("/api/v1/reviews", json=batch).json()["linked"] == 2
    with db.session(write=False) as s:
        links = dict(s.execute(select(Review.external_id, Review.customer_id)).all())
        methods = dict(s.execute(select(Review.external_id, Review.link_method)).all())
    assert links == {"a1": by_email.id, "a2": unique.id, "a3": None}
    assert methods == {"a1": "email", "a2": "name", "a3": None}
    a3 = api.get("/api/v1/reviews", params={"source": "amazon"}).json()["items"]
    a3_id = next(r["id"] for r in a3 if r["external_id"] == "a3")
    linked = api.put(f"/api/v1/reviews/{a3_id}/customer", json={"customer_id": unique.id})
    assert linked.status_code == 200 and linked.json()["link_method"] == "manual"
    # a later import without the customer keeps the link made by hand
    api.post("/api/v1/reviews", json={"reviews": [{**batch["reviews"][2], "rating": 3}]})
    assert api.get(f"/api/v1/reviews/{a3_id}").json()["customer_id"] == unique.id


def _cli(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KOKYAKU_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "kokyaku.cli.main", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_csv_import_through_the_cli_is_idempotent(tmp_path: Path, db: Database, settings) -> None:  # type: ignore[no-untyped-def]
    rows = [
        "掲載サイト,口コミID,評価,タイトル,本文,投稿者,投稿日,URL",
        "google,c-1,★★★★★,最高,店員さんが親切でした。,山本,2026/03/01 10:00,https://example.com/1",
        "tabelog,c-2,1,,料理がまずくて高い。二度と行かない。,匿名,2026年3月2日,",
        'rakuten,c-3,3.0,"普通","配送は早かった, でも梱包が雑",鈴木,2026-03-03,',
    ]
    path = tmp_path / "reviews.csv"
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode("cp932"))
    first = _cli(tmp_path, settings.database_url, "reviews", "import", str(path))
    assert first.returncode == 0, first.stderr
    # c-2 rates 1 star; c-3 rates 3 but its words are negative (梱包が雑): both are alerts
    assert "3 rows imported: created 3" in first.stderr and "alerts 2" in first.stderr
    again = _cli(tmp_path, settings.database_url, "reviews", "import", str(path))
    assert again.returncode == 0 and "unchanged 3" in again.stderr
    with db.session(write=False) as s:
        ratings = dict(s.execute(select(Review.external_id, Review.rating)).all())
        texts = dict(s.execute(select(Review.external_id, Review.text)).all())
    assert ratings == {"c-1": 5, "c-2": 1, "c-3": 3}
    assert texts["c-3"] == "配送は早かった, でも梱包が雑"

    bad = tmp_path / "bad.csv"
    bad.write_text(
        "source,review id,rating,posted at\ngoogle,x-1,9,2026-01-01\ngoogle,x-2,4,someday\n", encoding="utf-8"
    )
    refused = _cli(tmp_path, settings.database_url, "reviews", "import", str(bad))
    assert refused.returncode == 1
    assert "row 2, rating: Must be at most 5." in refused.stderr and "row 3, posted_at" in " ".join(
        refused.stderr.split()
    )
    assert _count(db, Review) == 3
    missing = tmp_path / "missing.csv"
    missing.write_text("review id,rating\nx,4\n", encoding="utf-8")
    no_column = _cli(tmp_path, settings.database_url, "reviews", "import", str(missing))
    assert no_column.returncode == 1 and "no column for posted_at" in no_column.stderr


def test_monitoring_page_with_trend_alerts_and_acknowledge(api, page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    api.post("/api/v1/reviews", json=BATCH)
    support = page_as("support", locale="ja")
    page = support.get("/reviews")
    assert page.status_code == 200
    assert (
        "掲載元別の評価の推移" in page.text
        and "食べログ" in page.text
        and "/static/plotly/plotly.min.js" in page.text
    )
    assert 'data-testid="alert-count">1<' in page.text and "料理が冷めていて" in page.text
    assert "星1・2の口コミ、または星3で否定的な内容" in page.text  # the rule, stated where the alerts are
    with db.session(write=False) as s:
        alert_id = s.scalar(select(Review.id).where(Review.alert.is_(True)))
    resp = support.post(f"/reviews/{alert_id}/acknowledge", data={"csrf_token": csrf_of(page.text)})
    assert resp.status_code == 303
    after = support.get("/reviews")
    assert 'data-testid="alert-count">0<' in after.text and "新しい低評価レビューはありません。" in after.text
    viewer = page_as("viewer", locale="en")
    seen = viewer.get("/reviews")
    assert seen.status_code == 200 and "Acknowledge" not in seen.text and "Import reviews" not in seen.text
    assert "Reviews of 4 or 5 stars never alert" in seen.text
    assert (
        viewer.post(f"/reviews/{alert_id}/acknowledge", data={"csrf_token": csrf_of(seen.text)}).status_code
        == 403
    )


def test_csv_upload_on_the_page(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    client = page_as("marketing", locale="en")
    token = csrf_of(client.get("/reviews").text)
    csv = "review id,rating,text,posted at\nu-1,2,Slow delivery,2026-03-01\nu-2,5,Great,2026-03-02\n"
    resp = client.post(
        "/reviews/import",
        data={"csrf_token": token, "source": "Instagram"},
        files={"file": ("r.csv", csv.encode(), "text/csv")},
    )
    assert resp.status_code == 200 and "2 rows: 2 new" in resp.text
    with db.session(write=False) as s:
        assert set(s.scalars(select(Review.source))) == {"instagram"}
    bad = "review id,rating,posted at\nu-3,6,2026-03-03\n"
    refused = client.post(
        "/reviews/import",
        data={"csrf_token": token, "source": "google"},
        files={"file": ("bad.csv", bad.encode(), "text/csv")},
    )
    assert refused.status_code == 422 and "Row 2, rating: Must be at most 5." in refused.text
    broken = client.post(
        "/reviews/import", data={"csrf_token": token}, files={"file": ("r.csv", csv.encode(), "text/csv")}
    )
    assert broken.status_code == 422 and "no column for source" in broken.text


def test_negative_rule_boundaries_for_alerts_and_follow_ups(api, session: Session, db: Database) -> None:  # type: ignore[no-untyped-def]
    make_customer(session, name="中村 優", emails=["yu@example.com"])
    session.commit()
    complaint = "配送が遅く、箱もつぶれていました。"  # negative words
    cases = {  # external id: (rating, text, negative?)
        "five": (5, complaint, False),
        "four": (4, complaint, False),  # a complaint inside a good rating: no alarm
        "three-neg": (3, complaint, True),
        "three-ok": (3, "普通でした。", False),
        "two": (2, "店員さんは親切でした。", True),  # 1-2 stars are negative whatever the words
        "one": (1, None, True),
    }
    batch = {
        "reviews": [
            {
                "source": "google",
                "external_id": key,
                "rating": rating,
                "text": text,
                "posted_at": "2026-05-01T10:00:00+09:00",
                "customer_email": "yu@example.com",
            }
            for key, (rating, text, _) in cases.items()
        ]
    }
    out = api.post("/api/v1/reviews", json=batch).json()
    assert (out["created"], out["alerts"], out["followups"]) == (6, 3, 3)
    with db.session(write=False) as s:
        rows = {r.external_id: r for r in s.scalars(select(Review))}
        followed = set(s.scalars(select(Followup.source_id).where(Followup.source_type == "review")))
    assert rows["four"].sentiment == "negative" and rows["three-neg"].sentiment == "negative"
    for key, (_, _, negative) in cases.items():
        assert (rows[key].negative, rows[key].alert, rows[key].id in followed) == (
            negative,
            negative,
            negative,
        ), key
    # the reviewer lowers the 4 to a 3 with the same words: now it alerts and is followed up
    lowered = {"reviews": [{**batch["reviews"][1], "rating": 3}]}
    again = api.post("/api/v1/reviews", json=lowered).json()
    assert (again["updated"], again["alerts"], again["followups"]) == (1, 1, 1)
    page = api.get("/api/v1/reviews/" + str(rows["four"].id)).json()
    assert page["negative"] and page["alert"]



def test_an_upload_refused_for_its_csrf_token_is_closed_too(page_as) -> None:  # type: ignore[no-untyped-def]
    import gc
    import tempfile

    client = page_as("marketing", locale="en")
    client.get("/reviews")
    for data in ({"source": "google"}, {"source": "google", "csrf_token": "forged"}):
        resp = client.post("/reviews/import", data=data, files={"file": ("r.csv", b"a,b\n1,2\n", "text/csv")})
        assert resp.status_code == 403
    gc.collect()
    spooled = [o for o in gc.get_objects() if isinstance(o, tempfile.SpooledTemporaryFile)]
    assert [f for f in spooled if not f.closed] == []
