"""Which column holds which field: header names in Japanese or English matched through synonym tables per
kind, custom fields matched by key or label, and mappings the user saved by name."""

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kokyaku.audit import service as audit
from kokyaku.audit.service import Actor
from kokyaku.customers.models import COMPANY, PERSON, CustomFieldDef
from kokyaku.errors import Conflict, NotFound, ValidationFailed
from kokyaku.i18n import gettext
from kokyaku.imports.models import KINDS, ImportMapping

CUSTOM_PREFIX = "custom."


@dataclass(frozen=True)
class FieldSpec:
    key: str
    label: str  # English msgid; the Japanese label is its translation
    synonyms: tuple[str, ...] = ()
    multi: bool = False  # may come from several columns (emails, phones, interests)


def _f(key: str, label: str, *synonyms: str, multi: bool = False) -> FieldSpec:
    return FieldSpec(key, label, synonyms, multi)


# Synonyms are compared after `header_key()`: width-folded, lower-case, without spaces and punctuation.
_IDS = [
    _f("kokyaku_id", "Kokyaku ID", "kokyakuid", "kokyaku顧客id", "顧客id(kokyaku)"),
    _f("external_id", "External ID", "id", "外部id", "顧客番号", "顧客コード", "会員番号", "会員id", "顧客no",
       "customerid", "customernumber", "customercode", "memberid", "membernumber"),
    _f("external_source", "External ID source", "外部idの連携元", "連携元", "外部システム", "idsource",
       "source system"),
]  # fmt: skip
_CONTACT = [
    _f("email", "Email", "メール", "メールアドレス", "eメール", "eメールアドレス", "email", "emailaddress",
       "mail", "mailaddress", "pcメール", "携帯メール", "メアド", multi=True),
    _f("other_emails", "Other emails", "その他のメール", "その他メール", "otheremails", "additionalemails",
       multi=True),
    _f("phone", "Phone", "電話", "電話番号", "tel", "telephone", "phone", "phonenumber", "携帯", "携帯電話",
       "携帯番号", "携帯電話番号", "連絡先", "mobile", "mobilephone", "固定電話", multi=True),
    _f("other_phones", "Other phones", "その他の電話", "その他電話", "otherphones", "additionalphones",
       multi=True),
    _f("postal_code", "Postal code", "郵便番号", "〒", "zip", "zipcode", "postalcode", "postcode"),
    _f("prefecture", "Prefecture", "都道府県", "県", "prefecture", "state"),
    _f("city", "City", "市区町村", "市町村", "city", "市区郡"),
    _f("street", "Street", "番地", "町名番地", "丁目番地", "住所2", "street", "addressline",
       "street address"),
    _f("address", "Address", "住所", "所在地", "address", "住所1", "fulladdress"),
]  # fmt: skip
_COMMON_TAIL = [
    _f("owner", "Owner", "担当者", "担当", "営業担当", "担当者メール", "owner", "accountowner", "owneremail"),
    _f("source", "Source", "流入元", "獲得経路", "流入経路", "媒体", "source", "leadsource"),
    _f("channel", "Channel", "チャネル", "channel"),
    _f("note", "Note", "備考", "メモ", "note", "notes", "memo", "comment", "comments", "コメント"),
    _f("interests", "Interests", "興味", "関心", "興味関心", "関心事", "タグ", "interests", "tags", "tag",
       multi=True),
]  # fmt: skip

FIELDS: dict[str, list[FieldSpec]] = {
    "customers": [
        *_IDS,
        _f(
            "name",
            "Name",
            "氏名",
            "名前",
            "お名前",
            "顧客名",
            "会員名",
            "フルネーム",
            "姓名",
            "name",
            "fullname",
            "customername",
            "membername",
        ),
        _f("last_name", "Last name", "姓", "苗字", "名字", "lastname", "familyname", "surname"),
        _f("first_name", "First name", "名", "firstname", "givenname"),
        _f(
            "name_kana",
            "Kana",
            "フリガナ",
            "ふりがな",
            "カナ",
            "かな",
            "氏名カナ",
            "氏名フリガナ",
            "名前カナ",
            "名前フリガナ",
            "お名前フリガナ",
            "お名前カナ",
            "kana",
            "furigana",
            "namekana",
            "reading",
        ),
        _f(
            "last_name_kana",
            "Last name (kana)",
            "セイ",
            "せい",
            "姓カナ",
            "姓フリガナ",
            "姓ふりがな",
            "lastnamekana",
        ),
        _f(
            "first_name_kana",
            "First name (kana)",
            "メイ",
            "めい",
            "名カナ",
            "名フリガナ",
            "名ふりがな",
            "firstnamekana",
        ),
        *_CONTACT,
        _f("birthday", "Birthday", "生年月日", "誕生日", "birthday", "birthdate", "dateofbirth", "dob"),
        _f("gender", "Gender", "性別", "gender", "sex"),
        _f(
            "company",
            "Company",
            "会社名",
            "勤務先",
            "所属会社",
            "会社",
            "company",
            "companyname",
            "organization",
        ),
        _f("job_title", "Job title", "役職", "肩書", "肩書き", "jobtitle", "title", "position"),
        _f("locale", "Language", "言語", "language", "locale"),
        *_COMMON_TAIL,
    ],  # fmt: skip
    "companies": [
        *_IDS,
        _f(
            "name",
            "Company name",
            "会社名",
            "企業名",
            "社名",
            "法人名",
            "取引先名",
            "会社",
            "company",
            "companyname",
            "name",
            "organization",
            "名前",
        ),
        _f(
            "name_kana",
            "Kana",
            "会社名カナ",
            "会社名フリガナ",
            "フリガナ",
            "ふりがな",
            "カナ",
            "kana",
            "furigana",
        ),
        *_CONTACT,
        _f("industry", "Industry", "業種", "業界", "industry"),
        _f(
            "company_size",
            "Company size",
            "従業員規模",
            "規模",
            "従業員数",
            "社員数",
            "companysize",
            "employees",
            "size",
        ),
        _f("website", "Website", "url", "ウェブサイト", "webサイト", "ホームページ", "hp", "website", "web"),
        *_COMMON_TAIL,
    ],  # fmt: skip
    "products": [
        _f(
            "sku",
            "SKU",
            "商品コード",
            "品番",
            "商品番号",
            "商品id",
            "sku",
            "productcode",
            "itemcode",
            "productid",
            "code",
        ),
        _f("name", "Product name", "商品名", "品名", "productname", "name", "itemname", "名前"),
        _f("category", "Category", "カテゴリ", "カテゴリー", "分類", "商品分類", "category"),
        _f("price", "Price", "価格", "単価", "販売価格", "定価", "税込価格", "price", "unitprice"),
        _f("currency", "Currency", "通貨", "currency"),
    ],  # fmt: skip
    "orders": [
        _f(
            "order_id",
            "Order ID",
            "注文番号",
            "注文id",
            "受注番号",
            "受注id",
            "注文no",
            "orderid",
            "ordernumber",
            "orderno",
        ),
        _f(
            "ordered_at",
            "Order date",
            "注文日",
            "注文日時",
            "受注日",
            "受注日時",
            "購入日",
            "購入日時",
            "orderdate",
            "orderedat",
            "date",
            "日付",
        ),
        _f("customer_id", "Kokyaku ID", "kokyakuid"),
        _f(
            "customer_external_id",
            "Customer ID",
            "顧客id",
            "顧客番号",
            "顧客コード",
            "会員id",
            "会員番号",
            "customerid",
            "customernumber",
            "memberid",
        ),
        _f(
            "customer_email",
            "Email",
            "メール",
            "メールアドレス",
            "email",
            "emailaddress",
            "customeremail",
            "顧客メール",
        ),
        _f("customer_phone", "Phone", "電話", "電話番号", "tel", "phone", "phonenumber", "customerphone"),
        _f("channel", "Channel", "チャネル", "販売チャネル", "販路", "channel", "saleschannel"),
        _f("status", "Status", "ステータス", "状態", "注文状態", "注文ステータス", "status"),
        _f("currency", "Currency", "通貨", "currency"),
        _f("sku", "SKU", "商品コード", "品番", "商品番号", "sku", "productcode", "itemcode"),
        _f("product_name", "Product name", "商品名", "品名", "productname", "itemname"),
        _f("quantity", "Quantity", "数量", "個数", "qty", "quantity"),
        _f("unit_price", "Unit price", "単価", "価格", "販売価格", "unitprice", "price"),
    ],  # fmt: skip
    "touchpoints": [
        _f("event_id", "Touchpoint ID", "接点id", "id", "eventid", "touchpointid"),
        _f("customer_id", "Kokyaku ID", "kokyakuid"),
        _f(
            "customer_external_id",
            "Customer ID",
            "顧客id",
            "顧客番号",
            "会員id",
            "会員番号",
            "customerid",
            "memberid",
        ),
        _f("customer_email", "Email", "メール", "メールアドレス", "email", "emailaddress", "customeremail"),
        _f("customer_phone", "Phone", "電話", "電話番号", "tel", "phone", "phonenumber"),
        _f("channel", "Channel", "チャネル", "経路", "channel"),
        _f("type", "Type", "種別", "種類", "区分", "type", "activity", "activitytype"),
        _f("at", "Date and time", "日時", "日付", "対応日時", "接触日時", "date", "time", "at", "datetime"),
        _f("summary", "Summary", "内容", "概要", "件名", "summary", "subject", "description", "メモ", "memo"),
    ],  # fmt: skip
}
REQUIRED: dict[str, list[tuple[str, ...]]] = {
    # each tuple: at least one of these fields must be mapped
    "customers": [("name", "last_name", "first_name", "email", "phone", "external_id", "kokyaku_id")],
    "companies": [("name", "kokyaku_id", "external_id", "email", "phone")],
    "products": [("sku",)],
    "orders": [("order_id",), ("customer_id", "customer_external_id", "customer_email", "customer_phone"),
               ("sku", "product_name"), ("unit_price", "sku")],
    "touchpoints": [("customer_id", "customer_external_id", "customer_email", "customer_phone"), ("channel",),
                    ("type",), ("at",)],
}  # fmt: skip

_PUNCT = re.compile(r"[\s_\-‐・:()\[\]【】「」『』/.,、。*※#]")


def header_key(header: str) -> str:
    """The form in which headers and synonyms are compared."""
    return _PUNCT.sub("", unicodedata.normalize("NFKC", header).lower())


_SYNONYMS: dict[str, dict[str, str]] = {
    kind: {header_key(s): spec.key for spec in specs for s in (spec.key, spec.label, *spec.synonyms)}
    for kind, specs in FIELDS.items()
}


def field_specs(kind: str) -> list[FieldSpec]:
    return FIELDS[kind]


def customer_kind(kind: str) -> str | None:
    return {"customers": PERSON, "companies": COMPANY}.get(kind)


def custom_defs(session: Session, kind: str) -> list[CustomFieldDef]:
    applies = customer_kind(kind)
    if applies is None:
        return []
    stmt = select(CustomFieldDef).where(CustomFieldDef.applies_to == applies).order_by(CustomFieldDef.id)
    return list(session.scalars(stmt))


def propose(kind: str, header: list[str], defs: list[CustomFieldDef]) -> dict[str, str]:
    """header -> field ("" to ignore the column), from the synonyms and the custom fields' keys and labels."""
    table = dict(_SYNONYMS[kind])
    for spec in FIELDS[kind]:
        # the headers of our own export in Japanese, whatever the catalog calls them
        table.setdefault(header_key(gettext("ja", spec.label)), spec.key)
    for d in defs:
        for name in (d.key, d.label_ja, d.label_en, f"{CUSTOM_PREFIX}{d.key}"):
            table.setdefault(header_key(name), f"{CUSTOM_PREFIX}{d.key}")
    out: dict[str, str] = {}
    taken: set[str] = set()
    multi = {s.key for s in FIELDS[kind] if s.multi}
    for h in header:
        if not h or h in out:
            continue
        key = header_key(h)
        field = table.get(key, "")
        if not field:
            # numbered columns: "メール2", "電話番号(携帯)", "email_2"
            trimmed = re.sub(r"\d+$", "", key)
            field = table.get(trimmed, "") if trimmed != key else ""
        if field and field in taken and field not in multi:
            field = ""
        if field:
            taken.add(field)
        out[h] = field
    return out


def allowed_fields(kind: str, defs: list[CustomFieldDef]) -> list[str]:
    return [s.key for s in FIELDS[kind]] + [f"{CUSTOM_PREFIX}{d.key}" for d in defs]


def check(
    kind: str, columns: dict[str, str], defs: list[CustomFieldDef]
) -> list[tuple[str, str, dict[str, Any]]]:
    """Problems with a mapping: unknown fields, a single-value field mapped twice, required fields missing."""
    allowed = set(allowed_fields(kind, defs))
    multi = {s.key for s in FIELDS[kind] if s.multi}
    problems: list[tuple[str, str, dict[str, Any]]] = []
    seen: set[str] = set()
    for header, field in columns.items():
        if not field:
            continue
        if field not in allowed:
            problems.append((header, "Not one of the allowed values.", {}))
        elif field in seen and field not in multi:
            problems.append((header, "Two columns are mapped to {field}.", {"field": field}))
        seen.add(field)
    for group in REQUIRED[kind]:
        if not seen & set(group):
            problems.append(("columns", "Map a column to one of: {fields}.", {"fields": ", ".join(group)}))
    return problems


def unknown_headers(columns: dict[str, str]) -> list[str]:
    return [h for h, f in columns.items() if h and not f]


# ---------------------------------------------------------------- saved mappings


class MappingNotFound(NotFound):
    code = "import_mapping_not_found"
    message = "There is no saved mapping named {name}."


def saved_mappings(session: Session, kind: str) -> list[ImportMapping]:
    stmt = select(ImportMapping).where(ImportMapping.kind == kind).order_by(ImportMapping.name)
    return list(session.scalars(stmt))


def get_mapping(session: Session, kind: str, name: str) -> ImportMapping:
    stmt = select(ImportMapping).where(ImportMapping.kind == kind, ImportMapping.name == name)
    found = session.scalar(stmt)
    if found is None:
        raise MappingNotFound(name=name)
    return found


def save_mapping(
    session: Session, *, actor: Actor, kind: str, name: str, columns: dict[str, str]
) -> ImportMapping:
    """Save (or replace) a named mapping for files of `kind`."""
    name = unicodedata.normalize("NFKC", name).strip()
    if kind not in KINDS:
        raise ValidationFailed([("kind", "Not one of the allowed values.", {})])
    if not name or len(name) > 100:
        raise ValidationFailed([("mapping_name", "Give the mapping a name of at most 100 characters.", {})])
    clean = {str(h)[:200]: str(f)[:80] for h, f in columns.items()}
    existing = session.scalar(
        select(ImportMapping).where(ImportMapping.kind == kind, ImportMapping.name == name)
    )
    others = existing is not None and existing.created_by not in (None, actor.user_id)
    if others and actor.user_id is not None:
        raise Conflict("A mapping with this name exists already.", field="mapping_name")
    if existing is None:
        existing = ImportMapping(kind=kind, name=name, columns=clean, created_by=actor.user_id)
        session.add(existing)
        action = "create"
    else:
        existing.columns = clean
        action = "update"
    session.flush()
    audit.record(
        session, actor=actor, entity_type="import_mapping", entity_id=existing.id, action=action,
        changes={"name": [None, name], "columns": [None, clean]},
    )  # fmt: skip
    return existing


def apply_saved(proposed: dict[str, str], saved: dict[str, str]) -> dict[str, str]:
    """The saved choice for every header it knows; the proposal for the rest."""
    return {h: saved.get(h, f) for h, f in proposed.items()}
