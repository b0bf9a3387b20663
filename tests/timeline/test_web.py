"""The Timeline section of the customer page: rendering in both languages, htmx paging and chips, and the
touchpoint form (CSRF, permission, errors at the field)."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kokyaku.db import Database
from kokyaku.timeline import entries
from kokyaku.timeline.models import Touchpoint
from tests.conftest import csrf_of
from tests.customers.factories import make_customer

T0 = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
HX = {"HX-Request": "true"}


def _customer_with_history(session: Session, n: int = 3) -> int:
    c = make_customer(session)
    entries.order_placed(
        session, customer_id=c.id, order_id=77, at=T0, channel="online", total=12800, currency="JPY"
    )
    for i in range(n - 1):
        entries.touchpoint_recorded(
            session, customer_id=c.id, touchpoint_id=i, at=T0 + timedelta(hours=i + 1),
            channel=("phone", "web")[i % 2], type=("call", "page_view")[i % 2], summary=f"note {i}",
        )  # fmt: skip
    session.commit()
    return c.id


def _items(html: str) -> int:
    return html.count('class="tl-item')


def test_section_renders_in_english(page_as, session: Session) -> None:
    cid = _customer_with_history(session)
    # a kind that a later domain writes without naming it still reads as words
    entries.bulk_add(session, [{"customer_id": cid, "at": T0 - timedelta(days=1), "kind": "ticket_reopened",
                                "summary": "Printer jams again"}])  # fmt: skip
    session.commit()
    html = page_as("viewer", locale="en").get(f"/customers/{cid}").text
    assert 'id="h-timeline">Timeline<' in html
    assert "Order placed" in html and "Order #77" in html and "$" not in html and "12,800" in html
    assert "Phone call" in html and "note 0" in html
    assert "Ticket reopened" in html and "Printer jams again" in html
    # newest first: the touchpoint (01:00 + 1h) comes before the order
    assert html.index("note 0") < html.index("Order #77")
    # a viewer sees no form
    assert "Log a touchpoint" not in html


def test_section_renders_in_japanese(page_as, session: Session) -> None:
    cid = _customer_with_history(session)
    html = page_as("sales", locale="ja").get(f"/customers/{cid}").text
    assert ">タイムライン<" in html
    assert "注文" in html and "電話" in html
    assert "接点を記録" in html
    # times in the user's zone (Asia/Tokyo): 01:00 UTC is 10:00
    assert "2026-03-01 10:00" in html


def test_more_button_pages_with_htmx(page_as, session: Session) -> None:
    cid = _customer_with_history(session, n=45)
    client = page_as("viewer")
    html = client.get(f"/customers/{cid}").text
    assert _items(html) == 20
    more = html.split('class="tl-more"')[1].split('hx-get="')[1].split('"')[0].replace("&amp;", "&")
    second = client.get(more, headers=HX).text
    assert _items(second) == 20 and "<html" not in second
    more = second.split('hx-get="')[1].split('"')[0].replace("&amp;", "&")
    third = client.get(more, headers=HX).text
    assert _items(third) == 5 and "tl-more" not in third
    # no repeats across the three pages
    times = [h.split("</time>")[0].rsplit(">", 1)[1] for h in (html + second + third).split("<time ")[1:]]
    assert len(times) == 45
    # without htmx the same link is a full page (works without JavaScript)
    assert "<html" in client.get(more).text


def test_channel_chip_reloads_only_the_section(page_as, session: Session) -> None:
    cid = _customer_with_history(session, n=6)
    client = page_as("viewer")
    html = client.get(f"/customers/{cid}/timeline?channel=phone", headers=HX).text
    assert "<html" not in html
    assert html.count('data-channel="phone"') == 3 and 'data-channel="web"' not in html
    assert 'aria-current="true">Telephone<' in html


def test_log_touchpoint_form(page_as, db: Database, session: Session) -> None:
    cid = _customer_with_history(session)
    client = page_as("sales", locale="en")
    page = client.get(f"/customers/{cid}").text
    assert "Log a touchpoint" in page
    token = csrf_of(page)
    form = {"csrf_token": token, "channel": "store", "type": "visit", "at": "2026-03-02T14:30",
            "summary": "Came in <b>with</b> her daughter"}  # fmt: skip
    resp = client.post(f"/customers/{cid}/touchpoints", data=form, headers=HX)
    assert resp.status_code == 200
    assert "Touchpoint saved." in resp.text
    assert "Came in &lt;b&gt;with&lt;/b&gt; her daughter" in resp.text
    with db.session(write=False) as s:
        tp = s.scalar(select(Touchpoint).where(Touchpoint.customer_id == cid))
        assert tp is not None and tp.channel == "store"
        assert tp.at == datetime(2026, 3, 2, 5, 30, tzinfo=UTC)  # 14:30 in Tokyo
    # without JavaScript: a redirect back to the customer page
    resp = client.post(f"/customers/{cid}/touchpoints", data={**form, "at": ""})
    assert resp.status_code == 303 and resp.headers["location"] == f"/customers/{cid}#h-timeline"


def test_log_touchpoint_errors_at_the_field(page_as, db: Database, session: Session) -> None:
    cid = _customer_with_history(session)
    client = page_as("sales", locale="en")
    token = csrf_of(client.get(f"/customers/{cid}").text)
    bad = {"csrf_token": token, "channel": "phone", "type": "call", "at": "yesterday-ish", "summary": "x"}
    resp = client.post(f"/customers/{cid}/touchpoints", data=bad, headers=HX)
    assert 'id="tl-at-error-' in resp.text and "Must be a date and time." in resp.text
    assert 'value="yesterday-ish"' not in resp.text or "has-error" in resp.text
    future = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M")
    resp = client.post(f"/customers/{cid}/touchpoints", data={**bad, "at": future})
    assert resp.status_code == 422 and "The time lies in the future." in resp.text
    resp = client.post(f"/customers/{cid}/touchpoints", data={**bad, "at": "", "channel": "fax"}, headers=HX)
    assert 'id="tl-channel-error-' in resp.text
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Touchpoint)) == 0


def test_log_touchpoint_needs_csrf_and_permission(page_as, db: Database, session: Session) -> None:
    cid = _customer_with_history(session)
    sales = page_as("sales")
    resp = sales.post(f"/customers/{cid}/touchpoints", data={"channel": "phone", "type": "call"})
    assert resp.status_code == 403
    viewer = page_as("viewer")
    token = csrf_of(viewer.get(f"/customers/{cid}").text)
    resp = viewer.post(
        f"/customers/{cid}/touchpoints", data={"csrf_token": token, "channel": "phone", "type": "call"}
    )
    assert resp.status_code == 403
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Touchpoint)) == 0
