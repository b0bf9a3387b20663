"""Finding customers that are probably one person or company, and merging those that share an identity.

Every rule is a blocking key computed in SQL: a GROUP BY over the key keeps only the blocks with two or more
customers (and not more than a cap, so that a shared office phone never becomes thousands of pairs), and only
their members come back to Python. Pairs are formed inside a block, so the work follows the number of
look-alikes, not the square of the customers. Rules: the same email, phone or external id (across identity
kinds and the primary email/phone columns); the same name or kana with the same birthday or postal code; a
similar name (bigram Jaccard >= 0.8 over name and kana) at the same postal code.
"""

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy import cast as sa_cast
from sqlalchemy.orm import Session, aliased

from kokyaku.audit.service import Actor
from kokyaku.customers.merge import merge_customers
from kokyaku.customers.merge_models import DISMISSED, OPEN, DuplicateCandidate
from kokyaku.customers.models import Customer, Identity
from kokyaku.db import utcnow
from kokyaku.errors import NotFound
from kokyaku.kit.pagination import BadCursor, Page, decode_cursor, encode_cursor

# How strongly each reason alone says "the same customer"; reasons combine as independent evidence.
WEIGHTS = {
    "same_email": 0.9,
    "same_external_id": 0.9,
    "same_name_birthday": 0.85,
    "same_name_postal": 0.75,
    "same_kana_postal": 0.65,
    "same_kana_birthday": 0.7,
    "same_phone": 0.6,  # families and offices share phones
    "similar_name_postal": 0.5,
}
IDENTITY_REASONS = ("same_email", "same_phone", "same_external_id")
MAX_BLOCK = 25  # more customers than this on one key is shared data (an office phone), not duplicates
MAX_SIMILAR_BLOCK = 200
SIMILARITY = 0.8
SEP = "\u0001"  # between the name and kana keys in customers.search_text
BATCH = 1000


class CandidateNotFound(NotFound):
    code = "candidate_not_found"
    message = "Duplicate candidate {id} does not exist."


@dataclass
class Pair:
    a: int
    b: int
    reasons: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, code: str, value: Any, weight: float | None = None) -> None:
        old = self.reasons.get(code)
        w = WEIGHTS[code] if weight is None else weight
        if old is None or w > old["weight"]:
            self.reasons[code] = {"code": code, "value": value, "weight": w}

    @property
    def score(self) -> int:
        miss = 1.0
        for r in self.reasons.values():
            miss *= 1.0 - r["weight"]
        return round(100 * (1.0 - miss))

    def reason_list(self) -> list[dict[str, Any]]:
        ordered = sorted(self.reasons.values(), key=lambda r: (-r["weight"], r["code"]))
        return [{"code": r["code"], "value": r["value"]} for r in ordered]


class Pairs:
    """Candidate pairs keyed by (smaller id, larger id)."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[int, int], Pair] = {}

    def add(self, x: int, y: int, code: str, value: Any, weight: float | None = None) -> None:
        a, b = (x, y) if x < y else (y, x)
        pair = self.by_key.get((a, b))
        if pair is None:
            pair = self.by_key[(a, b)] = Pair(a, b)
        pair.add(code, value, weight)


# ---------------------------------------------------------------- blocking keys in SQL


def _position(session: Session, text: Any, needle: str) -> ColumnElement[int]:
    """1-based position of `needle` in `text` (0 if absent): instr on SQLite, strpos on PostgreSQL."""
    if session.get_bind().dialect.name == "sqlite":
        return func.instr(text, needle)
    return func.strpos(text, needle)


def _keys(session: Session) -> tuple[Any, Any, Any]:
    """The name key, the kana key and the separator position, cut from customers.search_text."""
    pos = _position(session, Customer.search_text, SEP)
    return func.substr(Customer.search_text, 1, pos - 1), func.substr(Customer.search_text, pos + 1), pos


def _groups(
    session: Session, keys: Sequence[Any], where: Sequence[Any], cap: int = MAX_BLOCK
) -> Iterator[tuple[tuple[Any, ...], list[int]]]:
    """(key, ids) for each group of 2..cap active customers sharing `keys` (kind is always a key)."""
    exprs = [Customer.kind, *keys]
    labelled = [k.label(f"k{i}") for i, k in enumerate(exprs)]
    active = [Customer.merged_into_id.is_(None), *where]
    if session.get_bind().dialect.name == "postgresql":
        yield from _groups_hashed(session, exprs, labelled, active, cap)
        return
    # Portable: one GROUP BY pass with the member ids aggregated into a string (SQLite sorts once and
    # needs no second pass over the table, which it could only join back row by row).
    members = func.aggregate_strings(sa_cast(Customer.id, String), ",")
    stmt = select(*labelled, members).where(*active).group_by(*labelled).having(func.count().between(2, cap))
    for row in session.execute(stmt):
        yield tuple(row[:-1]), sorted(int(i) for i in row[-1].split(","))


def _groups_hashed(
    session: Session, exprs: list[Any], labelled: list[Any], active: list[Any], cap: int
) -> Iterator[tuple[tuple[Any, ...], list[int]]]:
    """PostgreSQL: the keys of the groups by hash aggregation (a string aggregate would force a sort of
    every customer), then their members by a hash join on those few keys."""
    grouped = select(*labelled).where(*active).group_by(*labelled).having(func.count().between(2, cap)).cte()
    key_cols = [grouped.c[f"k{i}"] for i in range(len(exprs))]
    stmt = (
        select(Customer.id, *key_cols)
        .join(grouped, and_(*(e == c for e, c in zip(exprs, key_cols, strict=True))))
        .where(*active)
    )
    by_key: dict[tuple[Any, ...], list[int]] = {}
    for row in session.execute(stmt):
        by_key.setdefault(tuple(row[1:]), []).append(row[0])
    for key in sorted(by_key, key=str):
        yield key, sorted(by_key[key])


def _identity_reason(value: str) -> str:
    if "@" in value:
        return "same_email"
    if value.startswith("+") and value[1:].isdigit():
        return "same_phone"
    return "same_external_id"


def _shared_identities(session: Session, pairs: Pairs) -> None:
    """Customers sharing an email, phone or external id: in identities of different kinds (an external id
    that is an email) or in the primary email/phone columns of legacy and imported rows."""
    values = union_all(
        select(Identity.customer_id.label("cid"), Identity.value.label("v")).where(
            Identity.kind.in_(("email", "phone", "external"))
        ),
        select(Customer.id.label("cid"), func.lower(func.trim(Customer.email)).label("v")).where(
            Customer.email.is_not(None), Customer.email != ""
        ),
        select(Customer.id.label("cid"), Customer.phone.label("v")).where(
            Customer.phone.is_not(None), Customer.phone != ""
        ),
    ).subquery()
    # A customer's own columns repeat its own identities, so (customer, value) is made distinct first; both
    # steps hash on PostgreSQL. Kinds and merged rows are checked on the few customers that come back.
    distinct = select(values.c.cid, values.c.v).distinct().cte("d")
    shared = select(distinct.c.v).group_by(distinct.c.v).having(func.count().between(2, MAX_BLOCK)).cte("g")
    by_value: dict[str, set[int]] = {}
    for value, cid in session.execute(
        select(distinct.c.v, distinct.c.cid).join(shared, shared.c.v == distinct.c.v)
    ):
        by_value.setdefault(value, set()).add(cid)
    groups = sorted(by_value.items())
    every = sorted(set().union(*(ids for _v, ids in groups))) if groups else []
    kinds: dict[int, str] = {}
    for i in range(0, len(every), BATCH):
        chunk = every[i : i + BATCH]
        kinds.update(
            session.execute(
                select(Customer.id, Customer.kind).where(
                    Customer.id.in_(chunk), Customer.merged_into_id.is_(None)
                )
            )
            .tuples()
            .all()
        )
    for value, ids in groups:
        active = sorted(i for i in ids if i in kinds)
        for x, y in combinations(active, 2):
            if kinds[x] == kinds[y]:
                pairs.add(x, y, _identity_reason(value), value)


def _same_name(session: Session, pairs: Pairs) -> None:
    name_key, kana_key, pos = _keys(session)
    has_name = pos > 1
    has_kana = func.length(Customer.search_text) > pos
    born, postal = Customer.birthday.is_not(None), Customer.postal_code.is_not(None)
    rules = (
        ("same_name_birthday", [name_key, Customer.birthday], [has_name, born]),
        ("same_kana_birthday", [kana_key, Customer.birthday], [has_kana, born]),
        ("same_name_postal", [name_key, Customer.postal_code], [has_name, postal]),
        # the same reading at one address: the name written with another kanji (斉藤/齋藤, 高橋/髙橋)
        ("same_kana_postal", [kana_key, Customer.postal_code], [has_kana, postal]),
    )
    for code, keys, where in rules:
        for key, ids in _groups(session, keys, where):
            shared = key[2]
            value = shared.isoformat() if hasattr(shared, "isoformat") else shared
            for x, y in combinations(ids, 2):
                pairs.add(x, y, code, value)


def _bigrams(search_text: str) -> set[str]:
    name, _sep, kana = search_text.partition(SEP)
    grams = {name[i : i + 2] for i in range(len(name) - 1)} or {name}
    # kana grams are marked so that a name bigram never matches a kana bigram
    grams |= {"\u0002" + kana[i : i + 2] for i in range(len(kana) - 1)}
    return grams


def _jaccard(x: set[str], y: set[str]) -> float:
    return len(x & y) / len(x | y) if x or y else 0.0


def _similar_names(session: Session, pairs: Pairs) -> None:
    """Near-identical names (bigram Jaccard >= 0.8 over name and kana) at the same postal code. The block is
    the postal code plus the first character of the name or of the kana: a pair this similar shares one."""
    name_key, kana_key, pos = _keys(session)
    firsts = (
        (func.substr(name_key, 1, 1), pos > 1),
        (func.substr(kana_key, 1, 1), func.length(Customer.search_text) > pos),
    )
    blocks: list[tuple[str, list[int]]] = []
    for first, has in firsts:
        where = [has, Customer.postal_code.is_not(None)]
        blocks += [
            (key[1], ids)
            for key, ids in _groups(session, [Customer.postal_code, first], where, MAX_SIMILAR_BLOCK)
        ]
    every = sorted({i for _postal, ids in blocks for i in ids})
    texts: dict[int, str] = {}
    for i in range(0, len(every), BATCH):
        chunk = every[i : i + BATCH]
        texts.update(
            session.execute(select(Customer.id, Customer.search_text).where(Customer.id.in_(chunk)))
            .tuples()
            .all()
        )
    grams = {cid: (text.partition(SEP)[0], _bigrams(text)) for cid, text in texts.items()}
    seen: set[tuple[int, int]] = set()
    for postal, ids in blocks:
        for x, y in combinations(ids, 2):
            (xname, xg), (yname, yg) = grams[x], grams[y]
            if (x, y) in seen or xname == yname:
                continue  # the same name at the same postal code is its own, stronger reason
            seen.add((x, y))
            # sizes bound the Jaccard index: skip the set work when it cannot reach the threshold
            if min(len(xg), len(yg)) < SIMILARITY * max(len(xg), len(yg)):
                continue
            sim = _jaccard(xg, yg)
            if sim >= SIMILARITY:
                pairs.add(x, y, "similar_name_postal", postal, 0.5 + (sim - SIMILARITY))


def find_pairs(session: Session, *, identities_only: bool = False) -> dict[tuple[int, int], Pair]:
    """Every candidate pair among active customers, with its reasons."""
    pairs = Pairs()
    if session.get_bind().dialect.name == "postgresql":
        # the groupings sort every customer; PostgreSQL's default 4 MB would spill them to disk
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    _shared_identities(session, pairs)
    if not identities_only:
        _same_name(session, pairs)
        _similar_names(session, pairs)
    return pairs.by_key


# ---------------------------------------------------------------- stored candidates


@dataclass
class ScanResult:
    found: int
    added: int
    updated: int
    removed: int
    dismissed: int
    seconds: float


def scan(session: Session) -> ScanResult:
    """Find candidates and store them: new pairs open, gone pairs removed, dismissed pairs stay dismissed."""
    started = time.perf_counter()
    found = find_pairs(session)
    t = cast(Table, DuplicateCandidate.__table__)
    existing = {
        (a, b): (cid, status, score, reasons)
        for cid, a, b, status, score, reasons in session.execute(
            select(t.c.id, t.c.customer_a_id, t.c.customer_b_id, t.c.status, t.c.score, t.c.reasons)
        )
    }
    now = utcnow()
    new_rows, changed, gone, dismissed = [], [], [], 0
    for key, pair in found.items():
        reasons = pair.reason_list()
        old = existing.get(key)
        if old is None:
            new_rows.append({"customer_a_id": pair.a, "customer_b_id": pair.b, "score": pair.score,
                             "reasons": reasons, "status": OPEN, "found_at": now})  # fmt: skip
        elif old[1] == DISMISSED:
            dismissed += 1
        elif old[2] != pair.score or old[3] != reasons:
            changed.append({"_id": old[0], "score": pair.score, "reasons": reasons})
    for key, (cid, status, _score, _reasons) in existing.items():
        if status == OPEN and key not in found:
            gone.append(cid)
    for i in range(0, len(new_rows), BATCH):
        session.execute(insert(t), new_rows[i : i + BATCH])
    if changed:
        stmt = (
            update(t)
            .where(t.c.id == bindparam("_id"))
            .values(score=bindparam("score"), reasons=bindparam("reasons"))
        )
        session.execute(stmt, changed)
    for i in range(0, len(gone), BATCH):
        session.execute(delete(t).where(t.c.id.in_(gone[i : i + BATCH])))
    return ScanResult(
        found=len(found), added=len(new_rows), updated=len(changed), removed=len(gone), dismissed=dismissed,
        seconds=time.perf_counter() - started,
    )  # fmt: skip


def list_candidates(
    session: Session, *, status: str = OPEN, cursor: str | None = None, limit: int = 50
) -> Page[tuple[DuplicateCandidate, Customer, Customer]]:
    """Best first (score, then newest), keyset-paginated; only pairs of customers that are both active."""
    a, b = aliased(Customer), aliased(Customer)
    stmt = (
        select(DuplicateCandidate, a, b)
        .join(a, a.id == DuplicateCandidate.customer_a_id)
        .join(b, b.id == DuplicateCandidate.customer_b_id)
        .where(DuplicateCandidate.status == status, a.merged_into_id.is_(None), b.merged_into_id.is_(None))
    )
    after = decode_cursor(cursor)
    if after:
        try:
            score, last_id = int(after[0]), int(after[1])
        except (TypeError, ValueError, IndexError) as exc:
            raise BadCursor(field="cursor") from exc
        stmt = stmt.where(
            or_(
                DuplicateCandidate.score < score,
                (DuplicateCandidate.score == score) & (DuplicateCandidate.id < last_id),
            )
        )
    stmt = stmt.order_by(DuplicateCandidate.score.desc(), DuplicateCandidate.id.desc()).limit(limit + 1)
    items = [(c, x, y) for c, x, y in session.execute(stmt).tuples()]
    more = len(items) > limit
    items = items[:limit]
    last = items[-1][0] if items else None
    return Page(items, encode_cursor([last.score, last.id]) if more and last else None)


def get_candidate(session: Session, candidate_id: int) -> DuplicateCandidate:
    candidate = session.get(DuplicateCandidate, candidate_id)
    if candidate is None:
        raise CandidateNotFound(id=candidate_id)
    return candidate


def dismiss_candidate(session: Session, *, actor: Actor, candidate_id: int) -> DuplicateCandidate:
    """Remember that these two are different customers: later scans do not bring the pair back."""
    candidate = get_candidate(session, candidate_id)
    if candidate.status != DISMISSED:
        candidate.status = DISMISSED
        candidate.dismissed_at = utcnow()
        candidate.dismissed_by_label = actor.label
    return candidate


# ---------------------------------------------------------------- automatic merge


@dataclass
class PlannedMerge:
    survivor_id: int
    merged_id: int
    reason: str
    value: str


def plan_shared_identity_merges(session: Session, *, include_phone: bool = False) -> list[PlannedMerge]:
    """Customers that share an email or external id (and phone, if asked) grouped transitively; each group
    merges into its oldest customer (the smallest id)."""
    codes = {"same_email", "same_external_id"} | ({"same_phone"} if include_phone else set())
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    link: dict[int, tuple[str, str]] = {}
    for (a, b), pair in sorted(find_pairs(session, identities_only=True).items()):
        shared = [r for r in pair.reason_list() if r["code"] in codes]
        if not shared:
            continue
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
        link.setdefault(b, (shared[0]["code"], str(shared[0]["value"])))
        link.setdefault(a, (shared[0]["code"], str(shared[0]["value"])))
    plan = []
    for cid in sorted(parent):
        survivor = root(cid)
        if survivor != cid:
            code, value = link[cid]
            plan.append(PlannedMerge(survivor, cid, code, value))
    return plan


def merge_shared_identities(
    session: Session, *, actor: Actor, include_phone: bool = False, dry_run: bool = False
) -> list[PlannedMerge]:
    """Merge every group of customers that share an identity value, recorded as automatic merges."""
    plan = plan_shared_identity_merges(session, include_phone=include_phone)
    if not dry_run:
        for step in plan:
            merge_customers(
                session, actor=actor, survivor_id=step.survivor_id, merged_id=step.merged_id, automatic=True,
                reason=f"{step.reason}: {step.value}",
            )  # fmt: skip
    return plan
