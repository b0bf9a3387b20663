"""Words for fields, operators and values, in the user's language (the builder, descriptions, charts)."""

from datetime import date
from typing import Any

from kokyaku.i18n import gettext
from kokyaku.kit.money import format_money
from kokyaku.kit.prefectures import prefecture_label
from kokyaku.segments.lifecycle import STAGE_INFO
from kokyaku.segments.rfm import SEGMENT_INFO
from kokyaku.segments.rules import FieldSpec

CHANNEL_LABELS = {
    "store": "Store",
    "online": "Online shop",
    "phone": "Telephone",
    "marketplace": "Marketplace",
    "sns": "Social media",
    "event": "Event",
    "other": "Other",
    "email": "Email",
    "chat": "Chat",
    "web": "Website",
    "ad": "Advertising",
    "inquiry": "Inquiry",
}
KIND_LABELS = {"person": "Person", "company": "Company"}


def choice_label(key: str, value: Any, locale: str) -> str:
    """The label of one allowed value of an enum field."""
    if key == "prefecture":
        return prefecture_label(value, locale)
    if key == "rfm_segment" and value in SEGMENT_INFO:
        return gettext(locale, SEGMENT_INFO[value][0])
    if key == "lifecycle_stage" and value in STAGE_INFO:
        return gettext(locale, STAGE_INFO[value][0])
    if key == "channels":
        return gettext(locale, CHANNEL_LABELS.get(value, value))
    if key == "kind":
        return gettext(locale, KIND_LABELS.get(value, value))
    if key == "gender":
        return gettext(locale, value)
    return str(value)


def value_label(spec: FieldSpec, value: Any, locale: str) -> str:
    if isinstance(value, date):
        return value.isoformat()
    if spec.unit == "money" and isinstance(value, int | float):
        return format_money(int(value), "JPY", locale)
    if spec.choices is not None:
        return choice_label(spec.key, value, locale)
    return str(value)
