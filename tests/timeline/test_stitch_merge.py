"""Stitching merges many visitors at once (`merge_many`): the same result as merging them one by one, each
undone on its own exactly; and the email shortcut of event validation agrees with normalize_email."""

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from kokyaku.config import Settings
from kokyaku.customers import merge
from kokyaku.customers.merge_models import CustomerMerge
from kokyaku.customers.models import Customer
from kokyaku.db import Database
from kokyaku.errors import KokyakuError
from kokyaku.feedback.models import CustomerScore, Response
from kokyaku.kit.normalize import NormalizationError, normalize_email
from kokyaku.segments.models import Segment, SegmentMember
from kokyaku.timeline.schemas import fast_normalize_email
from tests.conftest import TEST_ACTOR
from tests.customers.factories import make_customer
from tests.customers.test_merge import _pair
from tests.customers.test_merge import _snapshot as _customer_snapshot
from tests.feedback.factories import answer, make_survey


def _three(db: Database, settings: Settings) -> tuple[int, int, int]:
    """Two duplicates of one survivor, with orders (commerce), a touchpoint (timeline) and survey answers
    (feedback: the latest NPS per customer), so that every participant's batched move is compared."""
    with db.session() as s:
        a, b = _pair(s)
        c = make_customer(
            s, name="ヤマダ", name_kana=None, emails=["yamada.t@example.net"], interests=["ワイン"]
        )
        survey = make_survey(s)
        people = {cid: s.get(Customer, cid) for cid in (a, b, c.id)}
        answer(s, settings, survey, nps=9, customer=people[b], at=datetime(2026, 3, 1, tzinfo=UTC))
        answer(s, settings, survey, nps=3, customer=people[c.id], at=datetime(2026, 6, 1, tzinfo=UTC))
        answer(s, settings, survey, nps=7, customer=people[a], at=datetime(2026, 1, 1, tzinfo=UTC))
        # static snapshots (segments): a is in 1; b in 1 and 2; c in 2 and 3. Merging b then c into a must
        # count 2 as already joined when c's turn comes.
        snapshots = [Segment(name=f"snapshot {n}", kind="static", rules={}) for n in (1, 2, 3)]
        s.add_all(snapshots)
        s.flush()
        one, two, three = (x.id for x in snapshots)
        s.add_all(
            SegmentMember(segment_id=sid, customer_id=cid)
            for sid, cid in ((one, a), (one, b), (two, b), (two, c.id), (three, c.id))
        )
        return a, b, c.id


def _snapshot(s: Any, *ids: int) -> dict[str, Any]:
    def rows(stmt: Any) -> list[tuple[Any, ...]]:
        return sorted(tuple(r) for r in s.execute(stmt))

    return {
        **_customer_snapshot(s, *ids),
        "responses": rows(select(Response.id, Response.customer_id).where(Response.customer_id.in_(ids))),
        "segment_members": rows(
            select(SegmentMember.segment_id, SegmentMember.customer_id).where(
                SegmentMember.customer_id.in_(ids)
            )
        ),
        "nps": rows(
            select(CustomerScore.customer_id, CustomerScore.nps_score).where(
                CustomerScore.customer_id.in_(ids)
            )
        ),
    }


def test_merge_many_equals_merging_one_by_one_and_each_undo_is_exact(
    db: Database, settings: Settings
) -> None:
    a, b, c = _three(db, settings)
    with db.session(write=False) as s:
        before = _snapshot(s, a, b, c)
    with db.session() as s:
        done = merge.merge_many(s, actor=TEST_ACTOR, pairs=[(a, b), (a, c)], automatic=True)
        assert all(isinstance(m, CustomerMerge) for m in done)
        ids = [m.id for m in done]  # type: ignore[union-attr]
    with db.session(write=False) as s:
        batched = _snapshot(s, a, b, c)
        # the survivor has everyone's orders and answers; its latest NPS is c's (June)
        assert {cid for _id, cid in batched["responses"]} == {a} and batched["nps"] == [(a, 3)]
        assert len(batched["orders"]) == 3
        # and is in each of the three snapshots once
        assert [cid for _sid, cid in batched["segment_members"]] == [a, a, a]
        records = [s.get(CustomerMerge, i) for i in ids]
        shape = [
            (m.survivor_id, m.merged_id, m.moved, m.identity_ids, m.interests, m.filled) for m in records
        ]  # type: ignore[union-attr]
    with db.session() as s:  # undo the second, then the first: both customers come back exactly
        merge.undo_merge(s, actor=TEST_ACTOR, merge_id=ids[1])
        merge.undo_merge(s, actor=TEST_ACTOR, merge_id=ids[0])
    with db.session(write=False) as s:
        assert _snapshot(s, a, b, c) == before

    # the same two merges one by one leave the same rows and record the same moves
    with db.session() as s:
        one = merge.merge_customers(s, actor=TEST_ACTOR, survivor_id=a, merged_id=b, automatic=True)
        two = merge.merge_customers(s, actor=TEST_ACTOR, survivor_id=a, merged_id=c, automatic=True)
        single = [
            (m.survivor_id, m.merged_id, m.moved, m.identity_ids, m.interests, m.filled) for m in (one, two)
        ]
    with db.session(write=False) as s:
        assert _snapshot(s, a, b, c) == batched
    assert single == shape


def test_merge_many_skips_what_a_single_merge_would_refuse(db: Database) -> None:
    with db.session() as s:
        person = make_customer(s, name="訪問者", name_kana=None, emails=[])
        company = make_customer(
            s, name="株式会社テスト", name_kana=None, kind="company", emails=["info@t.jp"]
        )
        other = make_customer(s, name="別人", name_kana=None, emails=["x@t.jp"])
        visitor = make_customer(s, name="訪問者2", name_kana=None, emails=[])
        ids = person.id, company.id, other.id, visitor.id
    with db.session() as s:
        out = merge.merge_many(
            s, actor=TEST_ACTOR, pairs=[(ids[1], ids[0]), (ids[2], 999_999), (ids[2], ids[3])], automatic=True
        )
        assert [type(o).__name__ for o in out] == ["MergeKindMismatch", "CustomerNotFound", "CustomerMerge"]
        assert all(isinstance(o, KokyakuError) for o in out[:2])
    with db.session(write=False) as s:
        rows = s.execute(select(Customer.id, Customer.merged_into_id).where(Customer.id.in_(list(ids))))
        merged = {cid: into for cid, into in rows}
        assert merged == {ids[0]: None, ids[1]: None, ids[2]: None, ids[3]: ids[2]}


_ADDRESSES = st.builds(
    lambda local, domain: f"{local}@{domain}",
    st.text(alphabet="aZ09._-+!#'\"(), @<>\\ãｔ", min_size=0, max_size=70),
    st.one_of(
        st.sampled_from(["example.com", "EXAMPLE.jp", "localhost", "x.test", "a-.jp", "xn--80ak6aa92e.com",
                         "1.2.3.4", "b", "mail.co.uk", "例え.jp", "[127.0.0.1]", "x..jp", "x.123"]),
        st.text(alphabet="ab1.-", min_size=1, max_size=260),
    ),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(_ADDRESSES)
def test_email_shortcut_agrees_with_normalize_email(address: str) -> None:
    try:
        expected: str | None = normalize_email(address)
    except NormalizationError:
        expected = None
    try:
        got: str | None = fast_normalize_email(address)
    except NormalizationError:
        got = None
    assert got == expected
