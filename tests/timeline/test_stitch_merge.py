"""Stitching merges many visitors at once (`merge_many`): the same result as merging them one by one, each
undone on its own exactly; and the email shortcut of event validation agrees with normalize_email."""

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from kokyaku.customers import merge
from kokyaku.customers.merge_models import CustomerMerge
from kokyaku.customers.models import Customer
from kokyaku.db import Database
from kokyaku.errors import KokyakuError
from kokyaku.kit.normalize import NormalizationError, normalize_email
from kokyaku.timeline.schemas import fast_normalize_email
from tests.conftest import TEST_ACTOR
from tests.customers.factories import make_customer
from tests.customers.test_merge import _pair, _snapshot


def _three(db: Database) -> tuple[int, int, int]:
    with db.session() as s:
        a, b = _pair(s)
        c = make_customer(
            s, name="ヤマダ", name_kana=None, emails=["yamada.t@example.net"], interests=["ワイン"]
        )
        return a, b, c.id


def test_merge_many_equals_merging_one_by_one_and_each_undo_is_exact(db: Database) -> None:
    a, b, c = _three(db)
    with db.session(write=False) as s:
        before = _snapshot(s, a, b, c)
    with db.session() as s:
        done = merge.merge_many(s, actor=TEST_ACTOR, pairs=[(a, b), (a, c)], automatic=True)
        assert all(isinstance(m, CustomerMerge) for m in done)
        ids = [m.id for m in done]  # type: ignore[union-attr]
    with db.session(write=False) as s:
        batched = _snapshot(s, a, b, c)
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
